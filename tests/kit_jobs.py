"""Run several kit commands in one interpreter, as a notebook does: `python -m tests.kit_jobs JOBS RESULTS`.

JOBS is a JSON list of [module, [args...]] (module: a `src.<module>` command); RESULTS receives a
JSON list of {"returncode", "stdout", "stderr", "seconds"}, one per job, in order. The JAX-backend tests need
fresh interpreters (the backend is fixed at Keras's first import); one interpreter for all of
their jobs pays TensorFlow's and JAX's start-up once instead of once a job.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import sys
import time
import traceback


def run_job(module: str, args: list) -> dict:
    """Return the exit code and the printed text of `python -m src.<module> ARGS`, run in this interpreter."""
    from src.core.errors import run_cli

    out, err, started = io.StringIO(), io.StringIO(), time.monotonic()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = run_cli(importlib.import_module(f"src.{module}").main, [str(a) for a in args])
        except SystemExit as stop:  # argparse's own exits
            code = stop.code if isinstance(stop.code, int) else 2
        except Exception:  # noqa: BLE001 - reported as the job's failure, as a fresh interpreter would
            traceback.print_exc()
            code = 1
    return {"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue(),
            "seconds": round(time.monotonic() - started, 1)}


def main(jobs_file: str, results_file: str) -> None:
    with open(jobs_file) as handle:
        jobs = json.load(handle)
    results = [run_job(module, args) for module, args in jobs]
    with open(results_file, "w") as handle:
        json.dump(results, handle)


if __name__ == "__main__":
    main(*sys.argv[1:3])
