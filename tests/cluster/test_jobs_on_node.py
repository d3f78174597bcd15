"""CronJobs and Jobs run for real on the local cluster's kubelet, with PVCs and logs."""

from __future__ import annotations

from kubernetes_asyncio import client

from localcluster.config import ClusterConfig
from tests.helpers import SHELL_IMAGE, create_pvc, describe_pod, read_from_pvc, wait_for


def job_template(command: str, claim: str | None = None) -> dict:
    container: dict = {"name": "main", "image": SHELL_IMAGE, "command": ["sh", "-c", command]}
    spec: dict = {"restartPolicy": "Never", "containers": [container]}
    if claim:
        container["volumeMounts"] = [{"name": "work", "mountPath": "/work-volume"}]
        spec["volumes"] = [{"name": "work", "persistentVolumeClaim": {"claimName": claim}}]
    return {"spec": {"backoffLimit": 0, "template": {"spec": spec}}}


async def _job_pods(core: client.CoreV1Api, ns: str, job: str) -> list:
    return list((await core.list_namespaced_pod(ns, label_selector=f"job-name={job}")).items)


async def test_cronjob_runs_on_the_real_node_and_writes_to_pvc(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str, local_cluster: ClusterConfig | None
) -> None:
    batch = client.BatchV1Api(api)
    await create_pvc(core, namespace, "workspace")
    tmpl = job_template('echo "ran in $(hostname)"; echo done > /work-volume/result.txt', claim="workspace")
    await batch.create_namespaced_cron_job(
        namespace,
        {
            "metadata": {"name": "every-minute"},
            "spec": {"schedule": "* * * * *", "concurrencyPolicy": "Forbid", "jobTemplate": tmpl},
        },
    )
    # the CronJob controller fires on the next minute boundary
    jobs = await wait_for(
        lambda: batch.list_namespaced_job(namespace),
        lambda r: bool(r.items),
        timeout=90,
        what="the CronJob to create a Job",
    )
    job_name = jobs.items[0].metadata.name
    job = await wait_for(
        lambda: batch.read_namespaced_job(job_name, namespace),
        lambda j: any(c.type in ("Complete", "Failed") and c.status == "True" for c in j.status.conditions or []),
        timeout=60,
        what=f"job {job_name} to finish",
    )
    pods = await _job_pods(core, namespace, job_name)
    assert [c.type for c in job.status.conditions if c.status == "True"][-1] == "Complete", await describe_pod(
        core, namespace, pods[0].metadata.name
    )
    pod = pods[0]
    if local_cluster is not None:
        assert pod.spec.node_name == local_cluster.node_name, "job pods run on the local cluster's kubelet"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    assert await read_from_pvc(core, namespace, "workspace", "result.txt") == "done\n"
    log = await core.read_namespaced_pod_log(pod.metadata.name, namespace, container="main")
    assert log.strip() == f"ran in {pod.metadata.name}"


async def test_failing_job_is_failed_with_exit_code_and_logs(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    batch = client.BatchV1Api(api)
    await batch.create_namespaced_job(
        namespace,
        {
            "metadata": {"name": "fails"},
            **job_template("echo about to fail >&2; exit 3"),
        },
    )
    await wait_for(
        lambda: batch.read_namespaced_job("fails", namespace),
        lambda j: any(c.type == "Failed" and c.status == "True" for c in j.status.conditions or []),
        timeout=60,
        what="job 'fails' to be Failed",
    )
    pod = (await _job_pods(core, namespace, "fails"))[0]
    term = pod.status.container_statuses[0].state.terminated
    assert term.exit_code == 3 and term.reason == "Error"
    assert pod.status.phase == "Failed"
    log = await core.read_namespaced_pod_log(pod.metadata.name, namespace)
    assert log == "about to fail\n"
