"""The base notebook image (and, inherited, every image built on it)."""

from __future__ import annotations

import base64
import io
import json
import zipfile

import requests

from tests.helpers import parameter_notebook, printed

from .conftest import Container, notebook

IMAGE = "base-notebook"


def test_jupyterlab_serves(lab: Container) -> None:
    assert lab.get("/api/status").status_code == 200
    r = lab.get("/lab")
    assert r.status_code == 200 and "JupyterLab" in r.text
    # set up for a platform: JupyterLab does not ask users about fetching Jupyter news
    assert "@jupyterlab/apputils-extension:announcements" in r.text.split("disabledExtensions", 1)[1][:300]


def test_the_servers_own_settings_are_read(lab: Container) -> None:
    """The image's jupyter_server_config.json takes effect (settings in
    jupyter_server_config.d/ would be ignored: that folder only enables extensions): CPU is
    tracked for the status bar (jupyter-resource-usage's track_cpu_percent)."""
    metrics = lab.get("/api/metrics/v1").json()
    assert "cpu_percent" in metrics, metrics


def test_runs_as_the_fixed_non_root_user(lab: Container) -> None:
    assert lab.exec("id", "-u").strip() == "1000"
    assert lab.exec("id", "-un").strip() == "jovyan"
    assert lab.exec("sh", "-c", "echo $HOME && touch $HOME/w && echo ok").split() == ["/home/jovyan", "ok"]


def test_a_uid_of_its_own_works_as_moonhub_runs_it(lab: Container) -> None:
    """MoonHub runs each user as a uid of their own, not in /etc/passwd (moonhub_core/uids.py),
    with HOME and USER from the pod: Python, the kernel's tools and the shell's prompt work."""
    env = {"HOME": "/tmp/home-of-1000123", "USER": "jovyan", "LOGNAME": "jovyan"}
    who = "import getpass, os; print(getpass.getuser(), os.path.expanduser('~'))"
    script = f'mkdir -p $HOME && echo "${{PS1@P}}" && python3 -c "{who}"'
    out = lab.exec("bash", "-ic", script, env=env, user="1000123:1000123")
    assert "I have no name" not in out and "jovyan@" in out, out
    assert "jovyan /tmp/home-of-1000123" in out, out


def test_moonhub_extensions_installed_and_enabled(lab: Container) -> None:
    labext = lab.exec("jupyter", "labextension", "list")
    assert "moonhub-lab v0.1.0" in labext and "enabled" in labext.split("moonhub-lab v0.1.0", 1)[1].splitlines()[0]
    server = lab.exec("jupyter", "server", "extension", "list")
    assert "moonhub_lab.server" in server and "moonhub_lab.server  OK" in server.replace("\x1b[32m", "").replace(
        "\x1b[0m", ""
    )
    # the server extension answers in the running lab (what runs here, the user's notices)
    assert lab.get("/moonhub/server").json()["jobs_service"] is False
    assert lab.get("/moonhub/notices").json() == {"notices": []}


def test_runner_executes_a_parameterised_notebook(lab: Container) -> None:
    nb = notebook('print("rows:", rows)', "rows = 1")
    lab.exec("sh", "-c", f"cat > /tmp/nb.ipynb <<'EOF'\n{nb}\nEOF")
    out = lab.exec(
        "moonhub-run-notebook", "/tmp/nb.ipynb", "/home/jovyan/out.ipynb", env={"MOONHUB_PARAMETERS": '{"rows": 7}'}
    )
    assert "moonhub-run-notebook" in out
    result = json.loads(lab.exec("cat", "/home/jovyan/out.ipynb"))
    printed = "".join("".join(o.get("text", [])) for c in result["cells"] for o in c.get("outputs", []))
    assert printed.strip() == "rows: 7"


def test_an_environment_made_in_the_workspace_becomes_a_kernel(lab: Container) -> None:
    # no package index is reachable from here: the new environment sees the image's
    # packages through a .pth file (online, users `pip install ipykernel` into it instead)
    lab.exec(
        "sh",
        "-c",
        "python3 -m venv $HOME/envs/proj && "
        "python3 -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])' "
        "> $($HOME/envs/proj/bin/python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')/base.pth && "
        "$HOME/envs/proj/bin/python -m ipykernel install --user --name proj --display-name 'Project (workspace)'",
    )
    specs = lab.get("/api/kernelspecs").json()["kernelspecs"]
    assert specs["proj"]["spec"]["display_name"] == "Project (workspace)"
    assert specs["proj"]["spec"]["argv"][0] == "/home/jovyan/envs/proj/bin/python"


def _wheel(name: str, version: str) -> bytes:
    """A wheel of one pure-Python module ``name`` (no package index is reachable here)."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"VERSION = {version!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: moonhub-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{dist}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{dist}/RECORD"])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return buf.getvalue()


def test_a_users_pip_install_lands_in_the_workspace_for_kernels_and_shells_not_the_server(lab: Container) -> None:
    """Issue 35, item 1: the image's environment is root's; pip, run by the user, installs into
    the user's site in their home (the workspace) by itself; kernels and shells see it, the
    notebook server's own Python (the container's environment) does not."""
    whl = "mhprobe-1.0-py3-none-any.whl"
    lab.exec("sh", "-c", f"echo {base64.b64encode(_wheel('mhprobe', '1.0')).decode()} | base64 -d > /tmp/{whl}")
    where = "/home/jovyan/.local/lib/python3.11/site-packages/mhprobe.py"
    out = lab.exec(
        "bash", "-ic", f"pip install --no-index /tmp/{whl} && python -c 'import mhprobe; print(mhprobe.__file__)'"
    )
    assert "Defaulting to user installation" in out and where in out, out
    assert "ModuleNotFoundError" in lab.exec("python", "-c", "import mhprobe", check=False)
    nb = json.dumps(parameter_notebook("x = 1", "import mhprobe; print('FROM', mhprobe.__file__)"))
    lab.exec("sh", "-c", f"cat > /tmp/pkg.ipynb <<'EOF'\n{nb}\nEOF")
    lab.exec("moonhub-run-notebook", "/tmp/pkg.ipynb", "/tmp/pkg-out.ipynb")
    assert f"FROM {where}" in printed(json.loads(lab.exec("cat", "/tmp/pkg-out.ipynb")))
    # another version of one of the image's own packages: refused, the image's stays
    other = "jupyterlab-0.1-py3-none-any.whl"
    lab.exec("sh", "-c", f"echo {base64.b64encode(_wheel('jupyterlab', '0.1')).decode()} | base64 -d > /tmp/{other}")
    refused = lab.exec("bash", "-ic", f"pip install --no-index /tmp/{other}", check=False)
    assert "lack sys.path precedence to jupyterlab" in refused, refused


def test_an_environment_that_can_not_be_made_leaves_nothing_behind(lab: Container) -> None:
    """moonhub-env (issue 35, item 2): bad input is refused naming the line; an install that
    fails (here: no index answers) removes the environment and its kernel and says why."""
    lab.exec("sh", "-c", "printf 'numpy\\npkg @ http://10.0.0.5/pkg.whl\\n' > /tmp/req.txt")
    refused = lab.exec("moonhub-env", "create", "proj2", "-r", "/tmp/req.txt", check=False)
    assert "/tmp/req.txt, line 2: " in refused and "no URLs" in refused, refused
    offline = {"PIP_INDEX_URL": "http://127.0.0.1:9/simple/", "PIP_RETRIES": "0", "PIP_TIMEOUT": "2"}
    failed = lab.exec("moonhub-env", "create", "proj2", "tabulate", env=offline, check=False)
    assert "moonhub-env: installing the packages failed" in failed, failed
    left = lab.exec("sh", "-c", "ls -A $HOME/envs; ls -A $HOME/.local/share/jupyter/kernels 2>/dev/null; true")
    assert "proj2" not in left, left
    assert "env-proj2" not in lab.get("/api/kernelspecs").json()["kernelspecs"]


def test_git_in_the_lab_with_credentials_from_the_users_secret(lab: Container) -> None:
    """jupyterlab-git is installed and enabled; git answers a host's credentials from the
    secret given as the file git-credentials (docs/environments.md), and nothing else."""
    server = lab.exec("jupyter", "server", "extension", "list").replace("\x1b[32m", "").replace("\x1b[0m", "")
    assert "jupyterlab_git 0.55.0 OK" in server, server
    assert "@jupyterlab/git" in lab.exec("jupyter", "labextension", "list")
    ask = "printf 'protocol=https\\nhost=git.example.com\\n\\n' | GIT_TERMINAL_PROMPT=0 git credential fill 2>&1; true"
    assert "password=" not in lab.exec("sh", "-c", ask), "no secret given: no credentials"
    lab.exec("sh", "-c", "mkdir -p /var/run/secrets/moonhub && echo 'https://ada:t0ken@git.example.com' "
             "> /var/run/secrets/moonhub/git-credentials", user="root")  # fmt: skip
    try:
        got = lab.exec("sh", "-c", ask)
        assert "username=ada" in got and "password=t0ken" in got, got
        other = lab.exec("sh", "-c", ask.replace("git.example.com", "other.example.com"))
        assert "password=t0ken" not in other, "only the host it names"
    finally:
        lab.exec("rm", "-rf", "/var/run/secrets/moonhub", user="root")


def test_an_environment_runs_its_own_python_with_the_images_kernel_after_its_packages(lab: Container) -> None:
    """moonhub-env with nothing to install (no index is reachable here): the environment's
    kernel runs its own Python, isolated from the image's packages, with ipykernel from the
    image's kernel site after its own; the runner runs a notebook with it (--kernel)."""
    made = lab.exec("moonhub-env", "create", "bare")
    assert "bare is ready" in made and "installing" not in made, made
    assert "bare                 ready" in lab.exec("moonhub-env", "list")
    assert lab.get("/api/kernelspecs").json()["kernelspecs"]["env-bare"]["spec"]["display_name"] == "bare (environment)"
    code = (
        "import sys, importlib.util as u; print('PREFIX', sys.prefix); "
        "print('IMAGE', u.find_spec('jupyterlab') is not None); print('LAST', sys.path[-1])"
    )
    nb = json.dumps(parameter_notebook("x = 1", code))
    lab.exec("sh", "-c", f"cat > /tmp/env.ipynb <<'EOF'\n{nb}\nEOF")
    lab.exec("moonhub-run-notebook", "/tmp/env.ipynb", "/tmp/env-out.ipynb", "--kernel", "env-bare")
    out = printed(json.loads(lab.exec("cat", "/tmp/env-out.ipynb")))
    assert "PREFIX /home/jovyan/envs/bare" in out and "IMAGE False" in out, out
    assert "LAST /opt/moonhub/kernel-site" in out, out
    lab.exec("moonhub-env", "remove", "bare")
    assert "env-bare" not in lab.get("/api/kernelspecs").json()["kernelspecs"]


def _listening_tcp_ports(lab: Container) -> set[int]:
    """The TCP ports something in the container listens on (state 0A in /proc/net/tcp*)."""
    ports = set()
    for line in lab.exec("cat", "/proc/net/tcp", "/proc/net/tcp6").splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A":
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_vscode_opens_the_workspace_behind_the_servers_own_authentication(lab: Container) -> None:
    """VS Code in the browser (issue 35, item 4): a launcher card, code-server started on the
    first request through jupyter-server-proxy, opening the home folder; it listens on a Unix
    socket, not a port; a request without the server's token never reaches it; what is done in
    it counts as the server's activity (what the idle culler reads)."""
    servers = lab.get("/server-proxy/servers-info").json()["server_processes"]
    vscode = next(s for s in servers if s["name"] == "vscode")
    assert vscode["launcher_entry"] == {
        **vscode["launcher_entry"],
        "enabled": True,
        "title": "VS Code",
        "category": "Other",
    }
    assert lab.exec("sh", "-c", "command -v node || echo none").strip() == "none", "Node.js is code-server's alone"
    assert "with Code" in lab.exec("code-server", "--version", env={"HOME": "/tmp/cs-home"})
    tensorboard = next((s for s in servers if s["name"] == "tensorboard"), None)
    has_tensorboard = "yes" in lab.exec("sh", "-c", "command -v tensorboard >/dev/null && echo yes || echo no")
    assert tensorboard is not None and tensorboard["launcher_entry"]["enabled"] == has_tensorboard

    before = lab.get("/api/status").json()["last_activity"]
    ports_before = _listening_tcp_ports(lab)
    r = requests.get(f"{lab.url}/vscode/", timeout=30, allow_redirects=False)
    assert r.status_code in (302, 403), f"no token: {r.status_code}"
    assert "code-server" not in lab.exec("ps", "-eo", "args"), "an unauthenticated request started code-server"
    r = lab.get("/vscode/")
    assert r.status_code == 200, r.text[:500]
    # the workbench page, for the workspace folder
    assert "vscode-workbench-web-configuration" in r.text or "workbench" in r.text, r.text[:500]
    assert "/home/jovyan" in r.text.replace("%2F", "/"), r.text[:2000]
    assert _listening_tcp_ports(lab) == ports_before, "code-server listens on a socket, not a port"
    after = lab.get("/api/status").json()["last_activity"]
    assert after > before, (before, after)
