"""Service names on the local node: the hosts lines the node agent writes."""

from __future__ import annotations

from pathlib import Path

from localcluster.agent.services import HostsFile, service_hosts


def _svc(ns: str, name: str, **selector: str) -> dict:
    return {"metadata": {"namespace": ns, "name": name}, "spec": {"selector": selector}}


def _pod(ns: str, ip: str, ready: bool = True, phase: str = "Running", **labels: str) -> dict:
    return {
        "metadata": {"namespace": ns, "labels": labels},
        "status": {"phase": phase, "podIP": ip, "conditions": [{"type": "Ready", "status": str(ready)}]},
    }


def test_ready_pods_matching_the_selector_give_every_name_form() -> None:
    lines = service_hosts(
        [
            _svc("mh", "hub", app="hub"),
            _svc("mh", "jobs", app="jobs"),
            _svc("other", "hub", app="hub"),
            _svc("mh", "x"),
        ],
        [
            _pod("mh", "127.20.0.9", False, app="hub"),
            _pod("mh", "127.20.0.7", app="hub"),
            _pod("mh", "127.20.0.8", app="hub", tier="x"),
            _pod("mh", "127.20.0.5", phase="Succeeded", app="jobs"),
            _pod("other", "127.20.0.3", app="hub"),
        ],
    )
    assert lines == [
        "127.20.0.3 hub hub.other hub.other.svc hub.other.svc.cluster.local",
        "127.20.0.7 hub hub.mh hub.mh.svc hub.mh.svc.cluster.local",
    ], "no entry without a ready pod, nor for a Service without a selector"


def test_hosts_file_keeps_the_hosts_entries_and_its_inode(tmp_path: Path) -> None:
    base = tmp_path / "host-hosts"
    base.write_text("127.0.0.1 localhost\n10.0.0.5 build-machine\n")
    hosts = HostsFile(tmp_path / "agent" / "hosts", base)
    inode = hosts.path.stat().st_ino
    assert hosts.write(["127.20.0.7 hub"]) is True
    assert hosts.write(["127.20.0.7 hub"]) is False, "unchanged: not rewritten"
    text = hosts.path.read_text()
    assert text.startswith("127.0.0.1 localhost\n10.0.0.5 build-machine\n") and text.endswith("127.20.0.7 hub\n")
    hosts.write([])
    assert "127.20.0.7" not in hosts.path.read_text() and hosts.path.stat().st_ino == inode
