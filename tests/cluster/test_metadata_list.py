"""Lists of metadata alone against the real API server (moonhub_core.metadata): the
reconcile pass reads its CronJobs so."""

from __future__ import annotations

import pytest
from kubernetes_asyncio import client

from moonhub_core.metadata import list_metadata


def _cronjob(name: str, labels: dict[str, str]) -> dict[str, object]:
    return {
        "metadata": {"name": name, "labels": labels, "annotations": {"note": name}},
        "spec": {
            "schedule": "0 0 1 1 *",
            "suspend": True,
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "never-pulled"}]}
                    }
                }
            },
        },
    }


async def test_a_list_brings_each_selected_objects_metadata_and_nothing_else(
    api: client.ApiClient, namespace: str
) -> None:
    batch = client.BatchV1Api(api)
    for name, labels in (("a", {"kind": "mine", "n": "1"}), ("b", {"kind": "mine", "n": "2"}), ("c", {})):
        await batch.create_namespaced_cron_job(namespace, _cronjob(name, labels))
    found = await list_metadata(api, "batch", "v1", "cronjobs", namespace, "kind=mine")
    assert sorted(m["name"] for m in found) == ["a", "b"]
    assert {m["name"]: m["labels"]["n"] for m in found} == {"a": "1", "b": "2"}
    assert all(m["annotations"]["note"] == m["name"] and m["namespace"] == namespace for m in found)
    everything = await list_metadata(api, "batch", "v1", "cronjobs", namespace)
    assert sorted(m["name"] for m in everything) == ["a", "b", "c"]
    # the core group too
    cm = {"metadata": {"name": "cm"}, "data": {"k": "v"}}
    await client.CoreV1Api(api).create_namespaced_config_map(namespace, cm)
    assert "cm" in {m["name"] for m in await list_metadata(api, "", "v1", "configmaps", namespace)}


async def test_a_refused_or_failed_list_raises_as_the_typed_clients_do(api: client.ApiClient, namespace: str) -> None:
    with pytest.raises(client.ApiException) as e:
        await list_metadata(api, "batch", "v1", "no-such-things", namespace)
    assert e.value.status == 404
    with pytest.raises(client.ApiException) as bad:
        await list_metadata(api, "batch", "v1", "cronjobs", namespace, "not a selector ===")
    assert bad.value.status == 400
    assert b"unable to parse requirement" in bad.value.body  # the server's own words, as a typed call gives them
