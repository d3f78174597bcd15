"""What a run used: its pod's memory and CPU over the run, against its limits, and its GPUs'
utilization and memory, read from Prometheus when the run (or a pipeline task) ends and kept
with the run (docs/observability.md).

The figures are cAdvisor's, as the platform's Prometheus scraped them from the kubelet
(``metrics.prometheus_url``): the memory working set (what the OOM killer weighs) and the CPU
cores used, summed over the run's pod's containers, at most ``POINTS`` points over the run,
and the memory and CPU limits; the GPUs' are NVIDIA's DCGM exporter's (none for a run without
GPUs, or without the exporter). They are kept in the run's folder of the output store, beside
its log, so they outlive the pod and go when the run goes. Nothing the run's pod says about
itself is used: a user's code could report anything.

A scrape every ``s`` seconds samples the memory: the highest value seen is a lower bound of
the real peak (a run killed for memory went to its limit in between). Without Prometheus
(``metrics.prometheus_url`` empty) or when it does not answer, runs keep no figures; tracking
never waits on it (``TIMEOUT``).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
from typing import Any

import aiohttp

from .context import Context
from .db import utc

log = logging.getLogger("moonhub.jobs")

#: points kept per series at most (the step grows with the run's length)
POINTS = 120
#: the shortest step (Prometheus's scrape interval is usually 15-30 s)
MIN_STEP = 10
#: seconds a query to Prometheus may take before the run keeps no figures
TIMEOUT = 10
#: the series kept as one figure (the highest seen), not as points over the run
LIMITS = ("memory_limit_bytes", "cpu_limit_cores")


def selector(namespace: str, job_name: str) -> str:
    """cAdvisor's series of the containers of the run's pods (a Job's pods are named after
    it: ``<job>-<5 letters>``; a run's Job name is ``[a-z0-9-]``, nothing to escape)."""
    return f'namespace="{namespace}", pod=~"{job_name}-[a-z0-9]{{5}}", image!="", container!=""'


def queries(namespace: str, job_name: str, step: int) -> dict[str, str]:
    """The PromQL of each kept series (pure)."""
    sel = selector(namespace, job_name)
    return {
        "memory_bytes": f"sum(container_memory_working_set_bytes{{{sel}}})",
        "cpu_cores": f"sum(rate(container_cpu_usage_seconds_total{{{sel}}}[{max(2 * step, 30)}s]))",
        "memory_limit_bytes": f"max(container_spec_memory_limit_bytes{{{sel}}} > 0)",
        "cpu_limit_cores": f"max(container_spec_cpu_quota{{{sel}}} / container_spec_cpu_period{{{sel}}})",
        # NVIDIA's DCGM exporter names the pod each GPU is given to (asked of the kubelet,
        # not of the pod): the run's GPUs' mean utilization and their memory in use (MiB)
        "gpu_utilization_percent": f"avg(DCGM_FI_DEV_GPU_UTIL{{{gpu_selector(namespace, job_name)}}})",
        "gpu_memory_bytes": f"sum(DCGM_FI_DEV_FB_USED{{{gpu_selector(namespace, job_name)}}}) * 1048576",
    }


def gpu_selector(namespace: str, job_name: str) -> str:
    """The DCGM exporter's series of the GPUs the run's pods hold."""
    return f'namespace="{namespace}", pod=~"{job_name}-[a-z0-9]{{5}}"'


def span(started: datetime.datetime, finished: datetime.datetime) -> tuple[float, float, int]:
    """(start, end, step) of the range asked for: the run's time, a step past each end (the
    first and last samples), and a whole step giving at most :data:`POINTS` points (pure)."""
    start, end = utc(started).timestamp(), utc(finished).timestamp()
    step = max(MIN_STEP, math.ceil((end - start) / POINTS))
    return start - step, end + step, step


def summary(answers: dict[str, list[Any]], start: float, end: float, step: int) -> dict[str, Any]:
    """The kept document from Prometheus's range answers (``result`` of each query; one series
    each, or none): each series as points on the step's grid (None where there was no
    sample), its highest value and the limits (pure)."""
    n = int((end - start) // step) + 1
    doc: dict[str, Any] = {"start": start, "step": step}
    for key, result in answers.items():
        points: list[float | None] = [None] * n
        for series in result[:1]:
            for t, value in series.get("values", []):
                i = round((float(t) - start) / step)
                if 0 <= i < n and value not in ("NaN", "+Inf", "-Inf"):
                    points[i] = float(value)
        seen = [p for p in points if p is not None]
        if key in LIMITS:
            doc[key] = max(seen) if seen else None
        else:
            doc[key] = points
            doc[f"{key}_peak"] = max(seen) if seen else None
    doc["samples"] = sum(p is not None for p in doc.get("memory_bytes", []))
    return doc


async def _range(
    session: aiohttp.ClientSession, url: str, query: str, start: float, end: float, step: int
) -> list[Any]:
    params = {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": str(step)}
    async with session.get(f"{url.rstrip('/')}/api/v1/query_range", params=params) as r:
        body = await r.json(content_type=None)
        if r.status != 200 or body.get("status") != "success":
            raise RuntimeError(f"Prometheus answered {r.status}: {body.get('error') or body}")
        return list(body["data"]["result"])


async def collect(
    url: str, namespace: str, job_name: str, started: datetime.datetime, finished: datetime.datetime
) -> dict[str, Any]:
    """The run's figures from the Prometheus at ``url``; raises when it does not answer."""
    start, end, step = span(started, finished)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        asked = queries(namespace, job_name, step)
        results = await asyncio.gather(*(_range(session, url, q, start, end, step) for q in asked.values()))
    return summary(dict(zip(asked, results, strict=True)), start, end, step)


async def keep(
    ctx: Context, job_name: str, started: datetime.datetime | None, finished: datetime.datetime | None
) -> bool:
    """Keep the figures of a run (or task) that ran from ``started`` to ``finished``; False
    when there is no Prometheus, the run never started, or Prometheus did not answer (logged:
    the run keeps none; tracking goes on)."""
    url = ctx.settings.prometheus_url
    if not url or started is None or finished is None:
        return False
    try:
        doc = await collect(url, ctx.settings.namespace, job_name, started, finished)
    except (aiohttp.ClientError, TimeoutError, RuntimeError, ValueError, KeyError) as e:
        log.warning("run %s: its resource figures not kept (Prometheus at %s: %s)", job_name, url, e)
        return False
    await asyncio.to_thread(ctx.outputs.put_resources, job_name, doc)
    return True


#: figures being asked for now (a reference each, so none is collected before it ends)
_PENDING: set[asyncio.Task[bool]] = set()
#: at most this many asked for at once, and this many waiting (more are dropped, logged)
_AT_ONCE, _WAITING = 4, 500
_SLOTS: asyncio.Semaphore | None = None


def later(ctx: Context, job_name: str, started: datetime.datetime | None, finished: datetime.datetime | None) -> None:
    """:func:`keep` beside tracking, never awaited by it (a Prometheus that is slow or away
    costs the pass nothing); at most :data:`_AT_ONCE` queries at a time."""
    global _SLOTS
    if not ctx.settings.prometheus_url or started is None or finished is None:
        return
    if len(_PENDING) >= _WAITING:
        log.warning("run %s: its resource figures not kept (%d runs' are being asked for already)", job_name, _WAITING)
        return
    if _SLOTS is None:
        _SLOTS = asyncio.Semaphore(_AT_ONCE)
    slots = _SLOTS

    async def one() -> bool:
        async with slots:
            return await keep(ctx, job_name, started, finished)

    task = asyncio.get_running_loop().create_task(one())
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)


async def settled() -> None:
    """Wait until every figure asked for so far is kept or given up (tests, shutdown)."""
    while _PENDING:
        await asyncio.gather(*list(_PENDING), return_exceptions=True)
