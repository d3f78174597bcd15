import datetime

from kubernetes_asyncio import client

from jobs_service.jobstatus import _duration, failure_reason


def _pod(terminated: client.V1ContainerStateTerminated, limit: str | None = "4Gi", minute: int = 0) -> client.V1Pod:
    resources = client.V1ResourceRequirements(limits={"memory": limit} if limit else None)
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=f"p{minute}", creation_timestamp=datetime.datetime(2026, 1, 1, 0, minute)),
        spec=client.V1PodSpec(containers=[client.V1Container(name="notebook", resources=resources)]),
        status=client.V1PodStatus(
            container_statuses=[
                client.V1ContainerStatus(
                    name="notebook",
                    image="i",
                    image_id="",
                    ready=False,
                    restart_count=0,
                    state=client.V1ContainerState(terminated=terminated),
                )
            ]
        ),
    )


def test_oom_killed_container_names_its_limit() -> None:
    oom = client.V1ContainerStateTerminated(exit_code=137, reason="OOMKilled")
    assert failure_reason([_pod(oom)]) == "out of memory (limit 4 GiB)"
    assert failure_reason([_pod(oom, limit=None)]) == "out of memory"


def test_the_runners_termination_message_and_the_newest_pod_win() -> None:
    old = client.V1ContainerStateTerminated(exit_code=1, reason="Error", message="first try")
    new = client.V1ContainerStateTerminated(exit_code=1, reason="Error", message="out of memory (limit 2 GiB)\n")
    assert failure_reason([_pod(old, minute=1), _pod(new, minute=2)]) == "out of memory (limit 2 GiB)"
    plain = client.V1ContainerStateTerminated(exit_code=1, reason="Error")
    assert failure_reason([_pod(plain)]) == "the notebook's container exited with code 1"
    killed = client.V1ContainerStateTerminated(exit_code=137, reason="Error")
    assert failure_reason([_pod(killed)]) == "the notebook's container exited with code 137 (killed)"
    assert failure_reason([]) is None


def test_an_evicted_pod_and_a_container_that_never_started_say_so() -> None:
    evicted = _pod(client.V1ContainerStateTerminated(exit_code=137, reason="Error"))
    evicted.status.reason, evicted.status.message = "Evicted", "The node was low on resource: ephemeral-storage."
    assert failure_reason([evicted]) == (
        "the node evicted the run's pod: The node was low on resource: ephemeral-storage."
    )
    pulling = _pod(client.V1ContainerStateTerminated(exit_code=0))
    pulling.status.container_statuses[0].state = client.V1ContainerState(
        waiting=client.V1ContainerStateWaiting(reason="ImagePullBackOff", message='Back-off pulling image "r/x:1"')
    )
    assert failure_reason([pulling]) == 'the environment\'s image could not be pulled: Back-off pulling image "r/x:1"'


def test_durations_read_as_people_say_them() -> None:
    assert [_duration(s) for s in (90, 600, 3600, 5400)] == ["90 s", "10 min", "1 h", "1 h 30 min"]
