"""The Helm chart installed into the test cluster once per session (a pytest plugin of
tests/conftest.py): ``chart`` gives ``helm`` / ``kubectl`` against it and the installed
MoonHub as a browser reaches it. Used by tests/cluster/test_chart_install.py (which also
upgrades it) and by the browser test, which runs against both the host hub and this one."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from localcluster import gluster, registry, storage
from localcluster.config import REPO, ClusterConfig
from tests.conftest import Hub
from tests.sshd import Server, sshd

CHART = REPO / "helm" / "moonhub"
VALUES = CHART / "ci" / "local-cluster.yaml"
RELEASE, NS = "mh", "chart-e2e"
USERS = f"{NS}-users"


#: the release's own Gluster class (storage.gluster): its workspaces are made by the storage
#: agent the chart runs, beside the local cluster's class on the same volume
STORAGE_CLASS = f"{NS}-gluster"
#: the SSH server the release's agent sends its Gluster commands to (on the node address)
SSH_PORT, SSH_SECRET = 12022, "gluster-ssh"
GATE = REPO / "storage_agent" / "gluster-ssh-gate"


def storage_values(cfg: ClusterConfig, ssh: Server | None = None) -> dict[str, Any]:
    """The chart's storage as an operator sets it for the local cluster's Gluster volume (the
    node has the volume mounted): a class of the release's own, which the catalog names, and
    its storage agent; not the cluster's default class. With ``ssh`` the agent reaches
    glusterd as it does where Gluster's servers are outside the cluster: over SSH, through
    the gate, unprivileged; else as a peer (the local cluster's own agent does that)."""
    digest = registry.manifest_digest(storage.AGENT_REPOSITORY, "latest")
    assert digest, f"{storage.AGENT_REPOSITORY} is not in the registry: python -m images.build"
    values = storage.chart_values(cfg, digest)
    gl = values["storage"]["gluster"]
    gl.update(storageClass=STORAGE_CLASS, defaultClass=False)
    gl["agent"]["extraSubjects"] = []
    # its metrics beside the local cluster's agent's on the same node (both may have the
    # node's network)
    gl["agent"]["metricsPort"] = 9103
    if ssh is not None:
        gl["agent"]["ssh"] = {"host": ssh.address, "port": ssh.port, "user": "root", "secret": SSH_SECRET}
    return {
        "images": values["images"],
        "storage": values["storage"],
        "catalog": {"storage": {"storage_class": STORAGE_CLASS}},
        # the operator's mirror, as the release's package index sees it: the node's proxy
        # (which reaches PyPI), on an address of the node (a private one: its own rule)
        "packageIndex": {
            "upstream": cfg.package_index_url,
            "egress": [
                {"to": [{"ipBlock": {"cidr": f"{cfg.node_ip}/32"}}], "ports": [{"port": cfg.package_index_port}]}
            ],
        },
    }


class Release:
    """``helm`` and ``kubectl`` against the test cluster, printing what they do."""

    def __init__(
        self,
        helm: str,
        kubectl: str,
        kubeconfig: Path,
        values: Path | None = None,
        release: str = RELEASE,
        namespace: str = NS,
    ) -> None:
        self.helm_bin, self.kubectl_bin = helm, kubectl
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        #: more values (the release's storage) after ci/local-cluster.yaml
        self.values = values
        self.release, self.ns, self.users = release, namespace, f"{namespace}-users"
        #: the SSH server its storage agent sends Gluster's commands to, if any
        self.ssh: Server | None = None

    @classmethod
    def tools(cls, kubeconfig: Path, **kw: Any) -> Release:
        """With the pinned helm and kubectl (built when not cached)."""
        helm = subprocess.run([str(REPO / "helm" / "build.sh")], check=True, capture_output=True, text=True)
        k8s = subprocess.run([str(REPO / "localcluster" / "build.sh")], check=True, capture_output=True, text=True)
        kubectl = str(Path(k8s.stdout.strip().splitlines()[-1]) / "kubectl")
        return cls(helm.stdout.strip().splitlines()[-1], kubectl, kubeconfig, **kw)

    def helm(self, *args: str, timeout: float = 420) -> subprocess.CompletedProcess[str]:
        t0 = time.monotonic()
        r = subprocess.run([self.helm_bin, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        print(f"helm {args[0]}: rc {r.returncode} in {time.monotonic() - t0:.1f}s")
        return r

    def kubectl(self, *args: str) -> str:
        r = subprocess.run([self.kubectl_bin, *args], env=self.env, capture_output=True, text=True, timeout=60)
        return r.stdout + r.stderr

    def kubectl_bytes(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        """``kubectl`` whose output is bytes (an archive a command in a pod writes)."""
        return subprocess.run([self.kubectl_bin, *args], env=self.env, capture_output=True, timeout=timeout)

    def diagnose(self) -> str:
        """What an operator would look at when the release does not come up."""
        out = [
            self.kubectl("get", "pods,pvc", "-o", "wide", "-n", self.ns),
            self.kubectl("get", "pods", "-n", self.users),
        ]
        for component in ("hub", "proxy", "jobs"):
            sel = f"app.kubernetes.io/component={component}"
            out.append(f"--- {component} ---\n" + self.kubectl("logs", "-n", self.ns, "-l", sel, "--tail=40"))
        return "\n".join(out)

    def check(self, r: subprocess.CompletedProcess[str]) -> None:
        assert r.returncode == 0, f"{r.stdout}\n{r.stderr}\n{self.diagnose()}"

    def install_args(self) -> list[str]:
        more = ["-f", str(self.values)] if self.values else []
        return [
            self.release, str(CHART), "-n", self.ns, "-f", str(VALUES), *more,
            "--set", f"userNamespace.name={self.users}",
        ]  # fmt: skip

    def uninstall(self) -> None:
        """The release and what the chart keeps (the user namespace, the state volumes). The
        users' namespace goes first, while the release's storage agent (if it runs one) is
        there to remove the folders of its volumes."""
        self.kubectl("delete", "namespace", self.users, "--ignore-not-found", "--wait=true", "--timeout=120s")
        deadline = time.monotonic() + 60
        while (
            time.monotonic() < deadline
            and self.users in self.kubectl("get", "pv", "-o", "jsonpath={.items[*].spec.claimRef.namespace}").split()
        ):
            time.sleep(1)
        self.helm("uninstall", self.release, "-n", self.ns, "--wait", "--timeout", "120s")
        self.kubectl("delete", "namespace", self.ns, "--ignore-not-found", "--wait=true", "--timeout=120s")

    def hub(self) -> Hub:
        """The installed MoonHub as the test's browser reaches it: the public Service's cluster
        address (kube-proxy routes the host's connections too), and the development password
        the hub wrote into its state volume (a folder on the cluster's Gluster volume, a
        `hostPath` PV, readable here)."""
        svc = f"{self.release}-moonhub-proxy-public"
        ip = self.kubectl("get", "svc", "-n", self.ns, svc, "-o", "jsonpath={.spec.clusterIP}").strip()
        port = self.kubectl("get", "svc", "-n", self.ns, svc, "-o", "jsonpath={.spec.ports[0].port}").strip()
        volume = self.kubectl(
            "get", "pvc", "-n", self.ns, f"{self.release}-moonhub-hub-state", "-o", "jsonpath={.spec.volumeName}"
        )
        host_path = self.kubectl("get", "pv", volume.strip(), "-o", "jsonpath={.spec.hostPath.path}").strip()
        url = f"http://{ip}:{port}"
        self.wait_hub(url)
        password = (Path(host_path) / "dev-password").read_text().strip()
        return Hub(url=url, password=password, config=VALUES, catalog=VALUES, mailbox=[], label="Helm install")

    def wait_hub(self, url: str, timeout: float = 60) -> None:
        """Until the proxy reaches the hub: a new hub pod is reachable by its Service name a
        moment after it is ready (names follow readiness), so right after an install or an
        upgrade the proxy answers 503 for a few seconds."""
        deadline = time.monotonic() + timeout
        while status(f"{url}/hub/health") != 200:
            assert time.monotonic() < deadline, (
                f"the hub not reachable through {url} after {timeout}s\n{self.diagnose()}"
            )
            time.sleep(0.5)


def status(url: str, token: str = "") -> int:
    """The status of a GET without following redirects (0: no answer)."""
    try:
        headers = {"Authorization": f"token {token}"} if token else {}
        return requests.get(url, headers=headers, timeout=10, allow_redirects=False).status_code
    except requests.RequestException:
        return 0


@pytest.fixture(scope="session")
def chart(
    local_cluster: ClusterConfig | None,
    kubeconfig: Path,
    timings: dict[str, float],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Release]:
    """``helm install --wait`` of the chart with ``ci/local-cluster.yaml`` and its own Gluster
    storage (:func:`storage_values`), its agent's Gluster commands sent over SSH to an sshd
    on the node through the gate an operator installs; uninstalled after."""
    if local_cluster is None:
        pytest.skip(
            "the chart is installed end to end on the local cluster only (its images are in the local registry)"
        )
    with sshd(local_cluster.node_ip, SSH_PORT, f"{GATE} {gluster.volume_name(local_cluster)}") as server:
        values = tmp_path_factory.mktemp("chart") / "storage.yaml"
        values.write_text(yaml.safe_dump(storage_values(local_cluster, server)))
        rel = Release.tools(kubeconfig, values=values)
        rel.ssh = server
        rel.kubectl("create", "namespace", rel.ns)
        keys = tmp_path_factory.mktemp("gluster-ssh")
        (keys / "id").write_text(server.private_key)
        (keys / "known_hosts").write_text(server.known_hosts)
        made = rel.kubectl(
            "create", "secret", "generic", SSH_SECRET, "-n", rel.ns,
            f"--from-file=id={keys / 'id'}", f"--from-file=known_hosts={keys / 'known_hosts'}",
        )  # fmt: skip
        assert "created" in made, made
        t0 = time.monotonic()
        rel.check(rel.helm("install", *rel.install_args(), "--create-namespace", "--wait", "--timeout", "360s"))
        timings["helm install --wait (hub, proxy, jobs service ready)"] = time.monotonic() - t0
        yield rel
        rel.uninstall()
