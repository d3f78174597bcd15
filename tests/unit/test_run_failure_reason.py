import datetime

from kubernetes_asyncio import client

from jobs_service.jobstatus import failure_reason


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
    assert failure_reason([_pod(plain)]) is None
