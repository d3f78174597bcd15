"""Where users' pods install Python packages from: the platform's package index. Pure.

Pods reach nothing outside the cluster; the platform runs a caching proxy of the operator's
index (the chart's ``packageIndex``; on the local cluster a process on the node) and points
pip in every user server and job run at it (``spawner.package_index``). What pip installs
lands in the workspace (the images' user site, ``~/.local``: docs/environments.md).
"""

from __future__ import annotations

from urllib.parse import urlparse


def pod_env(index_url: str) -> dict[str, str]:
    """The environment that points a pod's ``pip`` at ``index_url`` ({} when there is none).
    An http index is named a trusted host too: pip refuses plain HTTP otherwise, and the
    proxy is reached inside the cluster, never across the internet."""
    if not index_url:
        return {}
    env = {"PIP_INDEX_URL": index_url}
    u = urlparse(index_url)
    if u.scheme == "http" and u.hostname:
        env["PIP_TRUSTED_HOST"] = u.netloc
    return env
