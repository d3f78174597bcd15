"""The pure parts of listing metadata alone (moonhub_core.metadata)."""

from __future__ import annotations

import json

from moonhub_core.metadata import collection_path, items_metadata


def test_paths_of_core_and_group_collections_namespaced_or_not() -> None:
    assert collection_path("batch", "v1", "cronjobs", "ns") == "/apis/batch/v1/namespaces/ns/cronjobs"
    assert collection_path("", "v1", "pods", "ns") == "/api/v1/namespaces/ns/pods"
    assert collection_path("", "v1", "nodes") == "/api/v1/nodes"
    assert collection_path("kueue.x-k8s.io", "v1beta1", "clusterqueues") == "/apis/kueue.x-k8s.io/v1beta1/clusterqueues"


def test_metadata_of_partial_or_whole_items() -> None:
    partial = {"kind": "PartialObjectMetadataList", "items": [{"metadata": {"name": "a"}}]}
    whole = {"kind": "CronJobList", "items": [{"metadata": {"name": "b", "labels": {"x": "1"}}, "spec": {}}, {}]}
    assert items_metadata(json.dumps(partial).encode()) == [{"name": "a"}]
    assert items_metadata(json.dumps(whole).encode()) == [{"name": "b", "labels": {"x": "1"}}, {}]
    assert items_metadata(b'{"kind": "CronJobList", "items": null}') == []
