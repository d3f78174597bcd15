"""GPU utilization per pod from NVIDIA's DCGM exporter (or a Prometheus ``/federate``
endpoint that carries its series): ``DCGM_FI_DEV_GPU_UTIL`` with the ``namespace`` and
``pod`` the exporter attributes each GPU to (it asks the kubelet, so a user's own process
can not change the attribution or the figure). On the local cluster the node's device plugin
answers in the same format.

:func:`parse` is pure and never raises on bad lines (they are skipped); :func:`scrape`
reads every configured endpoint and raises :class:`MetricsError` when one can not be read:
decisions then wait for a complete reading.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

METRIC = "DCGM_FI_DEV_GPU_UTIL"
_SAMPLE = re.compile(r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)(?:\s+\d+)?$")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*')
#: at most this much of one endpoint's answer is read
MAX_BYTES = 8 * 1024 * 1024

Utilization = dict[tuple[str, str], list[float]]


class MetricsError(RuntimeError):
    """A GPU metrics endpoint could not be read."""


def _labels(text: str) -> dict[str, str] | None:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if not m:
            return None
        out[m.group(1)] = m.group(2).replace('\\"', '"').replace("\\\\", "\\")
        pos = m.end()
    return out


def parse(text: str) -> Utilization:
    """``(namespace, pod)`` -> the utilization (percent) of each GPU the pod holds."""
    out: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m or m.group("name") != METRIC:
            continue
        labels = _labels(m.group("labels") or "")
        if not labels or not labels.get("pod") or not labels.get("namespace"):
            continue  # a GPU no pod holds
        try:
            value = float(m.group("value"))
        except ValueError:
            continue
        if math.isfinite(value) and 0 <= value <= 100:
            out[(labels["namespace"], labels["pod"])].append(value)
    return dict(out)


async def scrape(urls: list[str], timeout: float = 10) -> Utilization:
    """The utilization from every endpoint in ``urls``, merged."""
    merged: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
    http = AsyncHTTPClient(force_instance=True, max_body_size=MAX_BYTES)
    try:
        for url in urls:
            req = HTTPRequest(url, request_timeout=timeout, follow_redirects=False)
            try:
                resp = await http.fetch(req, raise_error=False)
            except OSError as e:
                raise MetricsError(f"{url}: {e}") from e
            if resp.code != 200:
                raise MetricsError(f"{url}: HTTP {resp.code} {resp.error or ''}".strip())
            for key, values in parse(resp.body.decode("utf-8", "replace")).items():
                merged[key] += values
    finally:
        http.close()
    return dict(merged)
