"""How much run history is kept: each job's newest ``keep_runs`` runs. A removed run's kept
outputs go with it (the copies in the owner's workspace are theirs and stay)."""

from __future__ import annotations

from sqlalchemy import select

from .context import ENDED, Context
from .db import DefinitionRow, RunContextRow


def trim_history(ctx: Context) -> int:
    """Remove ended runs past each job's ``keep_runs``; returns how many went."""
    removed = 0
    with ctx.db() as s:
        for row in s.scalars(select(DefinitionRow)):
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
