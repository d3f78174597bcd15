"""What a caller may pick for a job: the catalog entries they are entitled to. Pure."""

from __future__ import annotations

from typing import Any

from moonhub_core import choices as ch
from moonhub_core.catalog import Catalog


def entitled(catalog: Catalog, groups: tuple[str, ...], admin: bool) -> dict[str, Any]:
    """The environments, sizes and GPU types (with the counts within the caller's limit)
    a job of this caller may use, the catalog's order and defaults kept; and the teams of
    theirs that may own jobs (their groups with a team folder: ``teams``)."""
    ok = ch.allowed(catalog, groups, admin)
    gpus = []
    for g in ok.gpu_types:
        counts = ok.gpu_counts(g)
        if counts:
            gpus.append(
                {"name": g.name, "display_name": g.display_name, "description": g.description, "counts": counts}
            )
    return {
        "environments": [
            {
                "name": e.name,
                "display_name": e.display_name,
                "description": e.description,
                "framework": e.framework,
                "cuda": e.cuda,
                "default": e.default,
            }
            for e in ok.environments
        ],
        "sizes": [
            {"name": s.name, "display_name": s.display_name, "description": s.description, "default": s.default}
            for s in ok.sizes
        ],
        "gpu_types": gpus,
        "max_gpus": ok.max_gpus_per_user,
        "teams": [tf.group for tf in catalog.storage.team_folders if tf.group in groups],
    }
