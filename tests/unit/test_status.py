import pytest

from localcluster.agent.kubelet_api import tail_bytes
from localcluster.agent.status import ContainerState, phase, pod_status


def _c(state: str, code: int = 0) -> ContainerState:
    c = ContainerState("c", "busybox")
    if state in ("running", "terminated"):
        c.start("id")
    if state == "terminated":
        c.exit(code)
    return c


@pytest.mark.parametrize(
    ("states", "policy", "want"),
    [
        ([("waiting", 0)], "Never", "Pending"),
        ([("running", 0)], "Never", "Running"),
        ([("terminated", 0)], "Never", "Succeeded"),
        ([("terminated", 2)], "Never", "Failed"),
        ([("terminated", 2)], "OnFailure", "Running"),
        ([("terminated", 0), ("running", 0)], "Never", "Running"),
        ([("terminated", 0), ("terminated", 1)], "Never", "Failed"),
    ],
)
def test_phase(states: list, policy: str, want: str) -> None:
    assert phase([_c(s, code) for s, code in states], policy, False) == want


def test_signal_exit_and_restart_keep_last_state() -> None:
    c = _c("terminated", 143)
    assert c.terminated and c.terminated["reason"] == "Error"
    c.start("id2")
    assert c.last_state["terminated"]["exitCode"] == 143 and c.running


def test_ready_conditions() -> None:
    c = _c("running")
    c.ready = True
    st = pod_status(
        containers=[c],
        init_containers=[],
        restart_policy="Always",
        pod_ip="127.20.0.2",
        host_ip="127.0.0.1",
        start_time="t",
    )
    conds = {x["type"]: x["status"] for x in st["conditions"]}
    assert conds == {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "True",
        "PodScheduled": "True",
    }
    assert st["podIPs"] == [{"ip": "127.20.0.2"}]


@pytest.mark.parametrize(
    ("data", "lines", "want"),
    [
        (b"a\nb\nc\n", None, b"a\nb\nc\n"),
        (b"a\nb\nc\n", 2, b"b\nc\n"),
        (b"a\nb\nc", 1, b"c"),
        (b"a\n", 0, b""),
    ],
)
def test_tail(data: bytes, lines: int | None, want: bytes) -> None:
    assert tail_bytes(data, lines) == want
