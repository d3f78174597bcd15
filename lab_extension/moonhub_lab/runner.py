"""Run one notebook snapshot as a scheduled job: ``moonhub-run-notebook``.

Executes the snapshot with papermill, injecting parameters, and writes the output notebook
into the owner's workspace as it goes (papermill saves after every cell). Exits 0 on
success and 1 when a cell fails; the failing cell is printed and recorded in a small JSON
result file next to the output (``<output>.result.json``), for the user and their own tools:
nothing in MoonHub reads it (the jobs service takes a run's outcome from its Job's status and
the container's termination message). Why it failed goes into the container's termination
message, which the jobs service shows as the run's reason: "cell 3 failed: ValueError: ...",
"could not run the notebook: ...", or, when the OOM killer stopped the kernel, "out of memory
(limit ...)".

With ``--launch`` (how the jobs service's pods call it) the notebook version and the
parameters are fetched from the service first (``launch``), into the notebook path given.
Otherwise parameters come from ``$MOONHUB_PARAMETERS`` (a JSON object) or ``--parameters``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import launch
from .memory import OomWatch, human_bytes

#: where Kubernetes reads a container's termination message (the pod's default)
TERMINATION_LOG = "/dev/termination-log"


def _result(path: Path, **fields: Any) -> None:
    path.write_text(json.dumps(fields, indent=2))


def run(notebook: Path, output: Path, parameters: dict[str, Any], cwd: Path | None, kernel: str | None) -> int:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    output.parent.mkdir(parents=True, exist_ok=True)
    result = output.with_name(output.name + ".result.json")
    started = time.time()
    if kernel is None:
        # a notebook saved without kernel metadata runs on the image's default Python kernel
        meta = json.loads(notebook.read_text()).get("metadata", {})
        kernel = None if meta.get("kernelspec", {}).get("name") else "python3"
    print(f"moonhub-run-notebook: {notebook} -> {output} with parameters {sorted(parameters)}", flush=True)
    oom = OomWatch()
    oom.new_kills()  # the baseline: kills from now on are this run's
    try:
        pm.execute_notebook(
            str(notebook),
            str(output),
            parameters=parameters,
            cwd=str(cwd) if cwd else None,
            kernel_name=kernel,
            progress_bar=False,
            log_output=True,
            request_save_on_cell_execute=True,
        )
    except PapermillExecutionError as e:
        said = f"cell {e.exec_count} failed: {e.ename}: {_first_line(str(e.evalue))}"
        if not _explain_oom(oom):
            _termination_message(said)
        print(f"moonhub-run-notebook: {said}", file=sys.stderr, flush=True)
        _result(
            result,
            status="failed",
            cell=e.exec_count,
            error=e.ename,
            message=str(e.evalue),
            started=started,
            finished=time.time(),
        )
        return 1
    except Exception as e:  # the notebook could not run at all (no such kernel, bad file)
        said = f"could not run the notebook: {type(e).__name__}: {_first_line(str(e))}"
        if not _explain_oom(oom):
            _termination_message(said)
        print(f"moonhub-run-notebook: {said}", file=sys.stderr, flush=True)
        _result(result, status="error", error=type(e).__name__, message=str(e), started=started, finished=time.time())
        return 1
    _result(result, status="succeeded", started=started, finished=time.time())
    print("moonhub-run-notebook: done", flush=True)
    return 0


def _explain_oom(oom: OomWatch) -> bool:
    """When the run failed because the container ran out of memory (its kernel was killed),
    say so in the log and in the container's termination message, which Kubernetes keeps
    in the pod's status and the jobs service shows as the run's reason. True when it did."""
    kills, limit = oom.new_kills()
    if not kills:
        return False
    text = f"out of memory (limit {human_bytes(limit)})" if limit else "out of memory"
    print(f"moonhub-run-notebook: {text}: the kernel was killed by the OOM killer", file=sys.stderr, flush=True)
    _termination_message(text)
    return True


def _first_line(text: str, most: int = 300) -> str:
    """An error's message as one short line (a traceback's message may run on)."""
    line = next((x.strip() for x in text.splitlines() if x.strip()), "")
    return line if len(line) <= most else line[: most - 1] + "…"


def _termination_message(text: str) -> None:
    """``text`` where Kubernetes keeps it in the pod's status (the jobs service shows it as
    the run's reason)."""
    try:
        Path(TERMINATION_LOG).write_text(text[:4000])
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="moonhub-run-notebook", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("notebook", type=Path, help="the snapshot to execute")
    p.add_argument("output", type=Path, help="where the executed notebook goes (in the workspace)")
    p.add_argument("--parameters", default=os.environ.get("MOONHUB_PARAMETERS", "{}"), help="a JSON object")
    p.add_argument("--cwd", type=Path, default=None, help="working directory for the kernel")
    p.add_argument("--kernel", default=None, help="kernel name (default: the notebook's)")
    p.add_argument(
        "--launch",
        action="store_true",
        help="fetch the notebook (into NOTEBOOK) and the parameters from the jobs service ($MOONHUB_LAUNCH_URL)",
    )
    args = p.parse_args(argv)
    # papermill reports each cell and streams its outputs through logging: the live log
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout, force=True)
    if args.launch:
        try:
            params = launch.fetch(args.notebook, say=lambda text: print(text, flush=True))
        except (launch.LaunchError, KeyError, ValueError) as e:
            text = (
                f"could not start: {e}" if not isinstance(e, KeyError) else f"could not start: ${e.args[0]} is not set"
            )
            print(f"moonhub-run-notebook: {text}", file=sys.stderr, flush=True)
            _termination_message(text)
            return 1
        # the run folder: what the notebook writes there is kept with the run
        folder = Path(os.environ.get("MOONHUB_RUN_DIR") or args.output.with_suffix(""))
        folder.mkdir(parents=True, exist_ok=True)
        code = run(args.notebook, args.output, params, args.cwd, args.kernel)
        launch.send_published(say=lambda text: print(text, flush=True))
        launch.send_outputs(args.output, folder, say=lambda text: print(text, flush=True))
        return code
    try:
        params = json.loads(args.parameters)
    except json.JSONDecodeError as e:
        p.error(f"--parameters is not JSON: {e}")
    if not isinstance(params, dict):
        p.error("--parameters must be a JSON object")
    return run(args.notebook, args.output, params, args.cwd, args.kernel)


if __name__ == "__main__":
    sys.exit(main())
