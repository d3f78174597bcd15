"""Listing objects by their metadata alone.

The API server answers a list with only each object's metadata when asked for
``PartialObjectMetadataList`` (what client-go's metadata informers use): a reader that needs
names and labels does not receive, nor decode, every object's spec. At 10,000 CronJobs the
full list was most of a reconcile pass (docs/performance.md, "Jobs at scale").
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes_asyncio import client

from . import unread

#: metadata only; plain JSON where a server could not answer so (it then sends whole objects,
#: and the reader still takes only their metadata)
ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"


def collection_path(group: str, version: str, plural: str, namespace: str = "") -> str:
    """Pure: the API path of a collection (``group`` empty: the core group)."""
    root = f"/apis/{group}/{version}" if group else f"/api/{version}"
    return f"{root}/namespaces/{namespace}/{plural}" if namespace else f"{root}/{plural}"


def items_metadata(body: bytes) -> list[dict[str, Any]]:
    """Pure: the ``metadata`` of each item of a list answer (partial or whole objects)."""
    return [item.get("metadata") or {} for item in json.loads(body).get("items") or []]


async def list_metadata(
    api: client.ApiClient,
    group: str,
    version: str,
    plural: str,
    namespace: str = "",
    label_selector: str = "",
    timeout: float = 60,
) -> list[dict[str, Any]]:
    """The metadata (name, labels, annotations, ...) of every object of a collection that
    ``label_selector`` selects. Raises :class:`client.ApiException` as the typed clients do."""
    query = [("labelSelector", label_selector)] if label_selector else []
    answer = api.call_api(
        collection_path(group, version, plural, namespace),
        "GET",
        query_params=query,
        header_params={"Accept": ACCEPT},
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
        _preload_content=False,
        _request_timeout=timeout,
    )
    return items_metadata(await unread.body(answer))
