"""One user's pages can not act as another user who opens them.

With ``hub.subdomain_host`` each user's server and each service has an origin of its own
(``<user>.localhost``; browsers resolve names under localhost to this machine). A page that
one user's server serves -- here a page chromium receives for ``mallory``'s origin, as her
server would answer it: she controls that process -- is opened by an admin. It tries to read
the hub, the admin's own server and the jobs service, and to change the admin's workspace and
jobs. Every read is blocked by the browser and every write refused by the servers (XSRF);
the same page on a one-origin hub reads the hub's API as the admin (a same-origin no-cors
request needs no XSRF token), which is what subdomains prevent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.async_api import Browser, BrowserContext

from localcluster.config import REPO, ClusterConfig
from tests.conftest import TEST_CLUSTER, Hub, platform_doc, start_hub
from tests.helpers import describe_pod, wait_for

STATE = REPO / ".state" / "test-hub-origins"
PORT = 18600
BASE = f"http://localhost:{PORT}"
JOBS = f"http://jobs--service.localhost:{PORT}/services/jobs"

ATTACK = """<!doctype html><html><body><script>
(async () => {
  const T = %(targets)s, out = {};
  const step = async (name, fn) => {
    try { out[name] = 'done: ' + await fn(); } catch (e) { out[name] = 'blocked: ' + e; }
  };
  // two ways to read: a CORS request, and a no-cors one (readable only from the same
  // origin; JupyterHub lets same-origin no-cors GETs through without an XSRF token)
  const read = async (url) => {
    const out = [];
    for (const mode of ['cors', 'no-cors']) {
      try {
        const r = await fetch(url, {mode, credentials: 'include'});
        if (r.type === 'opaque') { out.push(mode + ': opaque'); continue; }
        const text = mode + ': ' + r.status + ' ' + (await r.text()).slice(0, 120);
        if (r.ok) return text;
        out.push(text);
      } catch (e) { out.push(mode + ': ' + e); }
    }
    throw new Error(out.join('; '));
  };
  await step('read the hub API', () => read(T.hub + '/hub/api/users'));
  await step('read the hub page', () => new Promise((ok, bad) => {
    const f = document.createElement('iframe');
    f.src = T.hub + '/hub/home';
    f.onload = () => {
      try { ok(f.contentDocument.title + ' ' + f.contentDocument.cookie.length); } catch (e) { bad(e); }
    };
    document.body.appendChild(f);
  }));
  await step('read the victim server', () => read(T.server + '/api/contents'));
  await step('read the jobs service', () => read(T.jobs + '/api/v1/jobs'));
  const put = {type: 'file', ext: '.txt'};
  await step('write the victim workspace', () => fetch(T.server + '/api/contents',
    {method: 'POST', mode: 'no-cors', credentials: 'include', body: JSON.stringify(put)}).then(r => r.type));
  const job = {name: 'pwned', notebook: 'x.ipynb', schedule: null,
               notebook_content: {nbformat: 4, nbformat_minor: 5, metadata: {}, cells: []}};
  await step('create a job', () => fetch(T.jobs + '/api/v1/jobs',
    {method: 'POST', mode: 'no-cors', credentials: 'include', body: JSON.stringify(job)}).then(r => r.type));
  window.__results = out;
  window.__done = true;
})();
</script></body></html>"""


@pytest.fixture(scope="module")
def origins_hub(local_cluster: ClusterConfig | None) -> Iterator[Hub]:
    if local_cluster is None:
        pytest.skip("the hub runs on the host against the local cluster")
    doc = platform_doc(STATE, PORT)
    doc["hub"] |= {"public_url": BASE, "subdomain_host": BASE}
    doc["jobs"]["url"] = f"http://{TEST_CLUSTER.node_ip}:{PORT + 90}"
    doc["culling"]["enabled"] = False
    url, config, sup = start_hub(local_cluster, STATE, doc, "hub-origins")
    yield Hub.started(url, config, sup, "hub-origins", local_cluster, [])
    sup.stop("hub-origins")


async def _login(browser: Browser, hub: Hub, user: str) -> BrowserContext:
    ctx = await browser.new_context()
    page = await ctx.new_page()
    await page.goto(f"{hub.url}/hub/login")
    await page.fill("#username_input", user)
    await page.fill("#password_input", hub.password)
    await page.click("#login_submit")
    await page.wait_for_url("**/hub/**")
    await page.goto(f"{hub.url}/hub/home")  # a page with a form sets the XSRF cookie
    await page.wait_for_load_state()
    await page.close()
    return ctx


async def _attack(ctx: BrowserContext, page_url: str, targets: dict[str, str]) -> dict[str, str]:
    """Open ``page_url`` (answered with the attack page, as mallory's server would) in the
    victim's browser and return what each step got."""
    html = ATTACK % {"targets": json.dumps(targets)}

    async def serve(route: Any) -> None:
        await route.fulfill(status=200, content_type="text/html", body=html)

    await ctx.route(page_url, serve)
    page = await ctx.new_page()
    await page.goto(page_url)
    await page.wait_for_function("window.__done === true", timeout=60_000)
    results: dict[str, str] = await page.evaluate("window.__results")
    await page.close()
    return results


async def test_a_page_from_one_users_origin_can_not_act_as_its_visitor(
    origins_hub: Hub, hub: Hub, browser: Browser
) -> None:
    h = origins_hub
    # the victim: an admin (admins may open any user's server) with a server of their own
    ctx = await _login(browser, h, "admin")
    cookies = await ctx.cookies(f"{BASE}/hub/")
    found = [c["value"] for c in cookies if c["name"].endswith("_xsrf")]
    assert found, [(c["name"], c["domain"], c["path"]) for c in cookies]
    xsrf = found[0]
    headers = {"X-XSRFToken": xsrf, "Content-Type": "application/json"}
    r = await ctx.request.post(
        f"{BASE}/hub/api/users/admin/server",
        data=json.dumps({"environment": "python", "size": "small"}),
        headers=headers,
    )
    assert r.status in (201, 202), await r.text()

    async def server() -> dict[str, Any]:
        model = await (await ctx.request.get(f"{BASE}/hub/api/users/admin", headers=headers)).json()
        return dict(model["servers"].get("", {}) or {"pending": model.get("pending")})

    try:
        await wait_for(server, lambda m: bool(m.get("ready")), timeout=120, what="the admin's server")
    except AssertionError as e:
        log = _log_tail(TEST_CLUSTER.logs / "hub-origins.log")
        raise AssertionError(f"{e}\n{await _pod()}\nhub log:\n{log}") from None
    r = await ctx.request.post(
        f"{BASE}/hub/api/users/admin/tokens",
        data=json.dumps({"scopes": ["access:servers!server=admin/", "access:services!service=jobs"]}),
        headers=headers,
    )
    token = (await r.json())["token"]
    lab = await ctx.new_page()
    await lab.goto(f"http://admin.localhost:{PORT}/user/admin/lab")  # the server's own cookie, via OAuth
    try:
        await lab.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
    except Exception:
        raise AssertionError(f"{lab.url}: {(await lab.content())[:1500]}") from None
    assert lab.url.startswith(f"http://admin.localhost:{PORT}/"), "each server has its own origin"
    jobs_page = await ctx.new_page()
    # services get names of their own too (JupyterHub's idna hook: <name>--service)
    await jobs_page.goto(f"{JOBS}/api/v1/jobs")  # the jobs service's cookie
    body = await jobs_page.inner_text("body")
    assert body.startswith("{") and json.loads(body) == {"jobs": []}, f"{jobs_page.url}: {body[:500]}"

    got = await _attack(
        ctx,
        f"http://mallory.localhost:{PORT}/user/mallory/evil.html",
        {
            "hub": BASE,
            "server": f"http://admin.localhost:{PORT}/user/admin",
            "jobs": JOBS,
        },
    )
    print(json.dumps(got, indent=1))
    for step in ("read the hub API", "read the hub page", "read the victim server", "read the jobs service"):
        assert got[step].startswith("blocked"), (step, got[step])
    # the writes left the browser (no-cors) and were refused: nothing changed
    node = await _server_url()
    await asyncio.to_thread(_nothing_changed, token, node)
    await ctx.request.delete(f"{BASE}/hub/api/users/admin/server", headers=headers)
    await ctx.close()

    # the same page on a hub with one origin for everything reads the hub's pages as the victim
    one = await _login(browser, hub, "admin")
    got = await _attack(one, f"{hub.url}/user/mallory/evil.html", {"hub": hub.url, "server": "", "jobs": ""})
    assert got["read the hub API"].startswith("done: no-cors: 200"), got
    await one.close()


def _nothing_changed(token: str, node: str) -> None:
    auth = {"Authorization": f"token {token}"}
    contents = requests.get(f"{node}/user/admin/api/contents", headers=auth, timeout=30)
    assert contents.status_code == 200, contents.text
    assert not [f["name"] for f in contents.json()["content"] if f["name"].startswith("untitled")], "unchanged"
    jobs = requests.get(
        f"http://{TEST_CLUSTER.node_ip}:{PORT + 90}/services/jobs/api/v1/jobs", headers=auth, timeout=30
    )
    assert jobs.status_code == 200 and jobs.json() == {"jobs": []}, "no job was made in the victim's name"


async def _pod() -> str:
    from kubernetes_asyncio import client, config

    api = await config.new_client_from_config(str(TEST_CLUSTER.admin_kubeconfig))
    try:
        return await describe_pod(client.CoreV1Api(api), "moonhub-users", "jupyter-admin")
    finally:
        await api.close()


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"({path}: {e})"


async def _server_url() -> str:
    """The admin's server at its pod address (requests can not resolve names under localhost)."""
    from kubernetes_asyncio import client, config

    api = await config.new_client_from_config(str(TEST_CLUSTER.admin_kubeconfig))
    try:
        pod = await client.CoreV1Api(api).read_namespaced_pod("jupyter-admin", "moonhub-users")
    finally:
        await api.close()
    return f"http://{pod.status.pod_ip}:8888"
