"""How much run history is kept: each job's newest ``keep_runs`` runs. A removed run's kept
outputs go with it (the copies in the owner's workspace are theirs and stay)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from .context import ENDED, Context
from .db import DefinitionRow, RunContextRow, RunRow, in_chunks

#: seconds between two trims of the history (the sync loop's)
EVERY = 60.0


def trim_history(ctx: Context) -> int:
    """Remove ended runs past each job's ``keep_runs``; returns how many went. Only jobs
    with more runs than their ``keep_runs`` are loaded (one count per job first)."""
    removed = 0
    with ctx.db() as s:
        counts = s.execute(
            select(RunRow.definition_id, func.count()).group_by(RunRow.definition_id).having(func.count() > 1)
        ).all()
        over = {def_id: n for def_id, n in counts}
        specs: list[Any] = []
        ids = sorted(over)
        for chunk in in_chunks(ids):
            specs += s.execute(select(DefinitionRow.id, DefinitionRow.spec).where(DefinitionRow.id.in_(chunk)))
        trim = [def_id for def_id, spec in specs if over[def_id] > int((spec or {}).get("keep_runs", 20))]
        for def_id in trim:
            row = s.get(DefinitionRow, def_id)
            if row is None:
                continue
            keep = int(row.spec.get("keep_runs", 20))
            for run in sorted(row.runs, key=lambda r: r.id, reverse=True)[keep:]:
                if run.status in ENDED:
                    if run.context is not None:
                        row.contexts.remove(run.context)
                    for t in run.tasks:  # a pipeline's tasks' too
                        ctx.outputs.remove(t.job_name)
                        if (mark := s.get(RunContextRow, t.job_name)) is not None:
                            s.delete(mark)
                    ctx.outputs.remove(run.job_name)  # its outputs go with it
                    s.delete(run)
                    removed += 1
        s.commit()
    return removed
