"""Session fixtures: one real local cluster (or $KUBECONFIG's), a fresh namespace per test,
and the hub running against it.

The suite starts its own cluster in ``.state/test-cluster`` (ports +1000, its own node
address and pod and service ranges) so it never disturbs the developer's control plane;
the machine's one real node (kubelet, containerd, kube-proxy) must be free: stop the
developer's cluster first (``./moonhub down``). When ``KUBECONFIG`` points at an existing
cluster (kind, k3d, a real one), the tests use that one instead; tests of the local node and
of the host-run hub are then skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as email_policy
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from aiosmtpd.controller import Controller
from kubernetes_asyncio import client, config

from localcluster import cli, prometheus
from localcluster.config import REPO, ClusterConfig
from localcluster.hub import dev_password, hub_up
from localcluster.supervisor import StartError, Supervisor
from tests import lanes

TEST_STATE = REPO / ".state" / "test-cluster"
#: the test suite's cluster: 4 simulated GPUs on its real node (the GPU reclaim tests)
TEST_CLUSTER = ClusterConfig(
    state_dir=TEST_STATE,
    port_offset=1000,
    node_name="moon-test-0",
    simulated_gpus=4,
    node_ip="10.85.0.2",
    pod_cidr="10.89.0.0/24",
    service_cidr="10.97.0.0/16",
    kwok_pod_cidr="10.91.0.0/16",
)
#: the `chart` fixture: the Helm chart installed into the test cluster
pytest_plugins = ["tests.chart_release"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by folder (tests/unit -> unit, tests/cluster -> cluster, tests/hub -> hub);
    under xdist, give each its lane."""
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        if folder in TIERS:
            item.add_marker(getattr(pytest.mark, folder))
    if lanes.is_worker(config):
        lanes.assign(config, items)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker learns the controller's run id (so it may reuse the run's cluster)."""
    node.workerinput[lanes.RUN_KEY] = lanes.run_id(node.config)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist: a lane to a worker (tests/lanes.py), unless another ``--dist`` is asked for."""
    return lanes.scheduler(config, log) if config.getvalue("dist") == "load" else None


_TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="session")
def timings() -> dict[str, float]:
    """Durations tests measure; printed at the end of the run (figures, not assertions)."""
    return _TIMINGS


#: the folders under tests/ that are tiers, fastest first
TIERS = ("unit", "monitoring", "middle", "db", "cluster", "hub", "browser", "images", "scale")
#: seconds per tier (setup, call and teardown of its tests), and per test
_TIER_SECONDS: dict[str, float] = {}
_LANE_SECONDS: dict[str, float] = {}
_TEST_SECONDS: dict[str, float] = {}
#: timings a worker has handed to the controller already
_SENT: set[str] = set()
#: the slowest tests named at the end of a run
SLOWEST = 15


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Each report carries its test's lane and the timings measured since the last one (an
    xdist worker's figures reach the controller, which prints them, only so)."""
    report = yield
    report.user_properties.append(("moonhub-lane", lanes.lane_of(item)))
    for what, seconds in _TIMINGS.items():
        if what not in _SENT:
            _SENT.add(what)
            report.user_properties.append(("moonhub-timing", (what, seconds)))
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    parts = report.nodeid.split("/")
    tier = parts[1] if len(parts) > 2 and parts[0] == "tests" and parts[1] in TIERS else "other"
    _TIER_SECONDS[tier] = _TIER_SECONDS.get(tier, 0.0) + report.duration
    _TEST_SECONDS[report.nodeid] = _TEST_SECONDS.get(report.nodeid, 0.0) + report.duration
    for name, value in report.user_properties:
        if name == "moonhub-lane":
            _LANE_SECONDS[str(value)] = _LANE_SECONDS.get(str(value), 0.0) + report.duration
        elif name == "moonhub-timing":
            label, seconds = value  # type: ignore[misc]
            _TIMINGS[str(label)] = float(seconds)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The run's time per tier and its slowest tests (where a faster CI would start), then
    what the tests measured on the way."""
    if _TIER_SECONDS:
        terminalreporter.section("MoonHub time per tier")
        for tier, seconds in sorted(_TIER_SECONDS.items(), key=lambda kv: -kv[1]):
            terminalreporter.write_line(f"{tier:8} {seconds:8.1f}s")
        terminalreporter.write_line(f"{'all':8} {sum(_TIER_SECONDS.values()):8.1f}s")
        if len(_LANE_SECONDS) > 1 and terminalreporter.config.getoption("numprocesses", None):
            terminalreporter.section("MoonHub time per lane (side by side: the longest is the run's)")
            for lane, seconds in sorted(_LANE_SECONDS.items(), key=lambda kv: -kv[1]):
                terminalreporter.write_line(f"{lane:8} {seconds:8.1f}s")
        terminalreporter.section(f"MoonHub slowest {SLOWEST} tests")
        for nodeid, seconds in sorted(_TEST_SECONDS.items(), key=lambda kv: -kv[1])[:SLOWEST]:
            terminalreporter.write_line(f"{seconds:8.1f}s  {nodeid}")
    if _TIMINGS:
        terminalreporter.section("MoonHub timings")
        for what, seconds in _TIMINGS.items():
            # sub-second figures (a keystroke's way to another browser) in milliseconds
            shown = f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f}s"
            terminalreporter.write_line(f"{what}: {shown}")


@pytest.fixture(scope="session")
def local_cluster(request: pytest.FixtureRequest, timings: dict[str, float]) -> Iterator[ClusterConfig | None]:
    """The cluster under test: a fresh local one, or None when an external one is given.
    xdist's workers share one: the first starts it, the controller stops it at the end."""
    if os.environ.get("KUBECONFIG"):
        yield None
        return
    cfg, run, shared = TEST_CLUSTER, lanes.run_id(request.config), lanes.is_worker(request.config)
    with lanes.exclusive(TEST_STATE.parent / "test-cluster.lock"):
        if not (shared and lanes.started_by(TEST_STATE) == run):
            t0 = time.monotonic()
            _start_test_cluster(cfg)
            timings["local cluster start (fresh state, binaries cached)"] = time.monotonic() - t0
            lanes.mark_started(TEST_STATE, run)
    yield cfg
    if not shared:
        cli.down(cfg)


#: where the state of the last start that failed is kept (its logs say why)
FAILED_STATE = TEST_STATE.with_name("test-cluster.failed")


def _start_test_cluster(cfg: ClusterConfig) -> None:
    """A fresh test cluster; a start that fails (a component not ready in time on a busy
    machine) is tried once more, its state kept in ``.state/test-cluster.failed`` (its logs)."""
    for attempt in (1, 2):
        if TEST_STATE.exists():
            cli.down(ClusterConfig.load(TEST_STATE))
            shutil.rmtree(TEST_STATE)
        try:
            cli.up(cfg)
            return
        except StartError as e:
            cli.down(cfg)
            shutil.rmtree(FAILED_STATE, ignore_errors=True)
            TEST_STATE.rename(FAILED_STATE)
            if attempt == 2:
                raise
            print(f"the test cluster did not start ({e}); its state is in {FAILED_STATE}; starting it again")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """xdist's controller, when every worker is done: stop the test cluster this run started."""
    config = session.config
    if lanes.is_worker(config) or not config.getoption("numprocesses", None):
        return
    lanes.lane_file(lanes.run_id(config)).unlink(missing_ok=True)
    if os.environ.get("KUBECONFIG"):
        return
    if lanes.started_by(TEST_STATE) == lanes.run_id(config):
        cli.down(ClusterConfig.load(TEST_STATE))


@pytest.fixture(scope="session")
def kubeconfig(local_cluster: ClusterConfig | None) -> Path:
    if local_cluster is None:
        return Path(os.environ["KUBECONFIG"])
    return local_cluster.admin_kubeconfig


@pytest.fixture(scope="session")
async def api(kubeconfig: Path) -> AsyncIterator[client.ApiClient]:
    c = await config.new_client_from_config(str(kubeconfig))
    yield c
    await c.close()


@pytest.fixture(scope="session")
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
async def namespace(core: client.CoreV1Api, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh namespace for one test, deleted afterwards (with everything in it)."""
    # a DNS label from the test's name (parametrized names carry brackets and commas)
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower().replace("_", "-"))[:40].strip("-")
    name = f"t-{base}-{uuid.uuid4().hex[:5]}"
    await core.create_namespace({"metadata": {"name": name, "labels": {"moonhub.io/test": "true"}}})  # type: ignore[arg-type]
    # the default ServiceAccount appears asynchronously; pods need it for admission
    from tests.helpers import wait_for

    async def accounts() -> Any:
        return await core.list_namespaced_service_account(name)

    await wait_for(
        accounts,
        lambda r: bool(r.items),
        timeout=30,
        what=f"default ServiceAccount in {name}",
    )
    yield name
    await core.delete_namespace(name)


HUB_STATE = REPO / ".state" / "test-hub"
SMTP_PORT = 18025


class Mailbox:
    """aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=email_policy))
        return "250 OK"


@dataclass
class Hub:
    url: str
    password: str
    config: Path
    catalog: Path
    #: e-mails the real SMTP server (aiosmtpd) received
    mailbox: list[EmailMessage]
    #: which MoonHub this is when a test runs against several (empty: the host-run test hub)
    label: str = ""
    #: the hub's log where the test started it (quoted when a user's server does not come)
    log: Path | None = None
    #: the cluster the hub's servers run in (their pods are described when one does not come)
    cluster: ClusterConfig | None = None

    @classmethod
    def started(
        cls, url: str, config: Path, sup: Supervisor, name: str, cluster: ClusterConfig, mailbox: list[EmailMessage]
    ) -> Hub:
        """The hub :func:`start_hub` started as ``name`` (its catalog next to its config)."""
        return cls(
            url=url,
            password=dev_password(config) or "",
            config=config,
            catalog=config.parent / "catalog.yaml",
            mailbox=mailbox,
            log=sup.log_path(name),
            cluster=cluster,
        )

    def login(self, user: str) -> requests.Session:
        """A browser-like session logged in through the hub's login form."""
        s = requests.Session()
        s.get(f"{self.url}/hub/login").raise_for_status()
        r = s.post(
            f"{self.url}/hub/login", data={"username": user, "password": self.password, "_xsrf": s.cookies.get("_xsrf")}
        )
        r.raise_for_status()
        assert any(c.name.startswith("jupyterhub-session") for c in s.cookies), f"login of {user} failed: {r.url}"
        return s

    def api(self, s: requests.Session, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Call the hub's REST API as the logged-in browser would (cookie + XSRF header)."""
        headers = {"X-XSRFToken": s.cookies.get("_xsrf", path="/hub/") or ""}
        return s.request(method, f"{self.url}/hub/api{path}", headers=headers, **kwargs)

    def token(self, s: requests.Session, user: str, *scopes: str) -> str:
        """An API token of ``user`` (as the server extension would hold), made through the hub API."""
        r = self.api(s, "POST", f"/users/{user}/tokens", json={"scopes": list(scopes), "note": "test"})
        assert r.status_code == 201, r.text
        return str(r.json()["token"])

    def lab(self, s: requests.Session, user: str, path: str, method: str = "GET", **kw: Any) -> requests.Response:
        """A call to ``user``'s server as JupyterLab makes it (its session cookie, the XSRF
        header from the server's own cookie)."""
        xsrf = {"X-XSRFToken": s.cookies.get("_xsrf", path=f"/user/{user}/") or ""}
        return s.request(method, f"{self.url}/user/{user}/{path}", headers=xsrf, timeout=60, **kw)

    def open_lab(self, s: requests.Session, user: str, timeout: float = 120) -> None:
        """Open ``user``'s lab like a browser (the OAuth redirects set the server's cookie),
        retrying until the server answers."""
        deadline = time.monotonic() + timeout
        while True:
            lab = s.get(f"{self.url}/user/{user}/lab", timeout=30)
            if lab.status_code == 200 and lab.url.endswith(f"/user/{user}/lab"):
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{user}'s lab not reachable after {timeout}s: {lab.status_code} {lab.url}\n"
                    + self.why_no_server(user, lab.text)
                )
            time.sleep(0.5)

    def why_no_server(self, user: str, page: str = "") -> str:
        """What the hub said and knows about ``user``'s server that did not come: the spawn
        page's failure message, the hub's log lines naming the user, and the pod."""
        parts = []
        failed = re.search(r"has failed\.(.*?)Would you like", page, re.S)
        if failed:
            parts.append("spawn page: " + " ".join(re.sub(r"<[^>]+>", " ", failed.group(1)).split())[:1000])
        if self.log is not None:
            try:
                lines = [ln for ln in self.log.read_text(errors="replace").splitlines() if user in ln]
                parts.append("hub log:\n" + "\n".join(lines[-30:]))
            except OSError as e:
                parts.append(f"hub log {self.log}: {e}")
        if self.cluster is not None:
            kubectl = [str(cli.build() / "kubectl"), f"--kubeconfig={self.cluster.admin_kubeconfig}"]
            pod = subprocess.run(
                [*kubectl, "-n", "moonhub-users", "describe", "pod", f"jupyter-{user}"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            parts.append(f"pod jupyter-{user}:\n{(pod.stdout + pod.stderr)[-3000:]}")
        return "\n".join(parts)

    def spawn_form(self, s: requests.Session, user: str, **choices: str) -> requests.Response:
        """Submit the spawn form like the browser does."""
        data = {"_xsrf": s.cookies.get("_xsrf", path="/hub/") or "", **choices}
        return s.post(f"{self.url}/hub/spawn/{user}", data=data)


def platform_doc(
    state: Path, port: int, catalog: dict[str, Any] | None = None, cluster: ClusterConfig = TEST_CLUSTER
) -> dict[str, Any]:
    """The local example platform config for a test hub in ``state`` on its own ports
    (``port``: public; +81 the hub API on the test cluster's node address, where pods reach
    it; +1 the proxy API), with a copy of the example catalog (or ``catalog``) next to it.
    Callers edit the document, then :func:`start_hub`."""
    if state.exists():
        shutil.rmtree(state)
    state.mkdir(parents=True)
    if catalog is None:
        shutil.copy(REPO / "moonhub_core" / "examples" / "catalog.yaml", state / "catalog.yaml")
    else:
        (state / "catalog.yaml").write_text(yaml.safe_dump(catalog))
    doc = yaml.safe_load((REPO / "hub_config" / "examples" / "local.yaml").read_text())
    doc["spawner"]["catalog"] = str(state / "catalog.yaml")
    # one origin: the tests' Python clients can not resolve <user>.localhost (browsers do;
    # tests/browser/test_origins.py runs a hub with per-user host names as `up` does)
    doc["hub"].pop("subdomain_host", None)
    # the images a test uses are built before the tests (not in the background, as by `up`)
    doc["spawner"].pop("image_builds", None)
    doc["hub"] |= {
        "public_url": f"http://127.0.0.1:{port}",
        "api_url": f"http://{cluster.node_ip}:{port + 81}",
        "proxy_api_url": f"http://127.0.0.1:{port + 1}",
        "state_dir": ".",
    }
    doc["spawner"]["package_index"] = cluster.package_index_url
    # image builds' pods reach the registry on this cluster's node address
    doc["builds"] |= {
        "builder_registry": cluster.node_registry,
        "push_registry": cluster.node_registry_push,
        "plain_http_registries": [cluster.node_registry, cluster.node_registry_push],
        # a removed image is deleted from the registry at the next pass
        "removal_grace": 0,
    }
    doc["metrics"] = {"prometheus_url": prometheus.url(cluster)}
    doc["culling"] |= {
        "url": f"http://{cluster.node_ip}:{port + 91}",
        "gpu_metrics_urls": [cluster.gpu_metrics_url],
    }
    return dict(doc)


def start_hub(cluster: ClusterConfig, state: Path, doc: dict[str, Any], name: str) -> tuple[str, Path, Supervisor]:
    """Write ``doc`` into ``state`` and start that hub (supervised as ``name``)."""
    config = state / "platform.yaml"
    config.write_text(yaml.safe_dump(doc))
    sup = Supervisor(cluster.run, cluster.logs, REPO)
    return hub_up(cluster, sup, config, name=name), config, sup


#: the test hub's progress document of images being built (relative to its state folder)
IMAGE_BUILDS = "image-builds.json"
#: the jobs service's caps in the hub tier and the middle tier alike (small, so tests reach them)
JOB_LIMITS = {
    "jobs_per_user": 12,
    "versions_per_job": 3,
    "notebook_bytes": 64 * 2**20,
    "snapshot_bytes_per_user": 16 * 2**20,
}


@pytest.fixture(scope="session")
def hub(local_cluster: ClusterConfig | None) -> Iterator[Hub]:
    if local_cluster is None:
        pytest.skip("hub tests start the hub on the host against the local cluster")
    doc = platform_doc(HUB_STATE, 18000)
    doc["jobs"]["url"] = f"http://{TEST_CLUSTER.node_ip}:18090"
    # the GPU queue tests start ten named servers at once
    doc["hub"]["named_servers"] = 12
    # no image is being built unless a test says so (tests/hub/test_spawn_choices.py)
    doc["spawner"]["image_builds"] = IMAGE_BUILDS
    # tests/hub/test_orphan_pods.py: a pod none of its servers stands for goes within a minute
    doc["spawner"]["orphan_pod_grace"] = 20
    doc["jobs"]["smtp"] = f"127.0.0.1:{SMTP_PORT}"
    # the tests' webhook receivers listen on loopback (operators allow internal receivers so)
    doc["jobs"]["webhook_allowed_networks"] = ["127.0.0.1/32"]
    doc["jobs"]["email_domains"] = ["example.org"]
    # departed users' jobs are held at the first reconcile that sees the hub's 404 (the grace
    # period itself is tested without a hub)
    doc["jobs"]["departed_grace"] = 0
    doc["jobs"]["reconcile_interval"] = 5
    doc["jobs"]["limits"] = dict(JOB_LIMITS)
    mail = Mailbox()
    smtp = Controller(mail, hostname="127.0.0.1", port=SMTP_PORT)
    smtp.start()
    url, config, sup = start_hub(local_cluster, HUB_STATE, doc, "hub")
    yield Hub.started(url, config, sup, "hub", local_cluster, mail.messages)
    sup.stop("hub")
    smtp.stop()
