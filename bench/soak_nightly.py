"""Soak: nightly_evaluation back-filled over many dates on a running `vigil airflow`.

Registers N scikit-learn versions (trained for real by the train-sklearn stage, registered before
the first date), starts `vigil airflow` on its own data dir and embedded PostgreSQL (or
VIGIL_DATABASE_URL), back-fills nightly_evaluation over D dates and checks:

- every back-filled run succeeded, and the warehouse holds exactly D x N succeeded nightly
  evaluations (one per version and date) and no failed one;
- the resident memory (RSS) of the scheduler process and of the API server (with its uvicorn
  workers) at the end is within 20% of what it was after the first 10 dates.

    .venv/bin/python bench/soak_nightly.py                       # 60 dates x 10 versions (about an hour on 2 cores)
    .venv/bin/python bench/soak_nightly.py --dates 15 --versions 3

Prints one line per 5 finished dates and a summary; exits 1 when a check fails. Not part of
`make test` or `make bench` (`make soak` runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dates", type=int, default=60, help="nights to back-fill")
    p.add_argument("--versions", type=int, default=10, help="registered scikit-learn versions")
    p.add_argument("--parallelism", type=int, default=4, help="`vigil airflow --parallelism`")
    p.add_argument("--keep", action="store_true", help="keep the data dir (printed) instead of deleting it")
    a = p.parse_args()
    if a.dates < 11:
        p.error("--dates must be at least 11: memory is compared with the level after the first 10 dates")
    return a


def _rss(pid: int, tree: bool) -> int:
    """Resident bytes of the process, or of it and its children."""
    import psutil

    p = psutil.Process(pid)
    procs = [p, *p.children(recursive=True)] if tree else [p]
    total = 0
    for c in procs:
        try:
            total += c.memory_info().rss
        except psutil.NoSuchProcess:  # a task process that just ended
            pass
    return total


# The scheduler's own process (its executor workers and the task processes under it come and go
# with the tasks running at the instant); the API server with its long-lived uvicorn workers.
TREE = {"scheduler": False, "api-server": True}


def _register(n: int, first: date, root: Path) -> None:
    """Train and register ``n`` small classifiers, as if registered the day before ``first``."""
    import sqlalchemy as sa

    from gpu_trainer import sklearn_data
    from gpu_trainer.stages import train_sklearn as T
    from vigil.registry.ingest import record_stage
    from vigil.registry.versions import RunRef
    from vigil.storage.parquet_store import default_store
    from vigil.storage.warehouse import ready_engine

    engine = ready_engine()
    data = sklearn_data.write("synthetic", root / "data.parquet", rows=1200, seed=0)
    strategies = ("logistic_regression", "random_forest", "gradient_boosting")
    for i in range(n):
        out = root / f"train-{i}"
        strategy = strategies[i % 3]
        hp = {} if strategy == "logistic_regression" else {"n_estimators": 40}
        T.run(T.Spec(dataset=str(data), target="label", strategy=strategy, model_name=f"soak-{i}", seed=i,
                     hyperparameters=hp, cv_folds=0, n_boot=100), str(out))
        v = record_stage(engine, out, RunRef("soak", "register", f"train-{i}", datetime.now(timezone.utc)),
                         store=default_store())
        with engine.begin() as c:
            c.execute(sa.text("UPDATE model_versions SET created_at = :t WHERE id = :i"),
                      {"t": datetime.combine(first - timedelta(days=1), datetime.min.time(), timezone.utc), "i": v.version_id})


def main() -> int:
    a = _args()
    import httpx
    import psutil
    import sqlalchemy as sa

    root = Path(tempfile.mkdtemp(prefix="vg-soak-", dir="/tmp"))  # short: the embedded server's socket lives here
    os.environ.update(VIGIL_DATA_DIR=str(root / "var"), VIGIL_SITE_DIR=str(root / "site"), VIGIL_STAGE_RUNNER="local",
                      AIRFLOW_HOME=str(REPO))
    first = datetime.now(timezone.utc).date() - timedelta(days=a.dates + 1)
    nights = [first + timedelta(days=i) for i in range(a.dates)]
    t0 = time.monotonic()
    _register(a.versions, first, root)
    print(f"registered {a.versions} versions in {time.monotonic() - t0:.0f} s; data dir {root}", flush=True)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(root / "vigil-airflow.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "vigil.cli", "airflow", "--port", str(port),
                             "--parallelism", str(a.parallelism)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    failures: list[str] = []
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{base}/api/v2/monitor/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"vigil airflow did not come up; see {root / 'vigil-airflow.log'}")
            time.sleep(2)
        pw = json.loads((root / "var" / "airflow-passwords.json").read_text())["admin"]
        token = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": pw}, timeout=30).json()["access_token"]
        h = {"Authorization": f"Bearer {token}"}
        while httpx.get(f"{base}/api/v2/dags/nightly_evaluation", headers=h, timeout=30).status_code != 200:
            time.sleep(2)
        comps = [(" ".join(c.cmdline()), c.pid) for c in psutil.Process(proc.pid).children()]
        watched = {name: next((pid for cmd, pid in comps if name in cmd.replace("_", "-")), None)
                   for name in ("scheduler", "api-server")}
        if None in watched.values():
            raise SystemExit(f"cannot find the scheduler and api-server among {comps}")

        r = httpx.post(f"{base}/api/v2/backfills", headers=h, timeout=60, json={
            "dag_id": "nightly_evaluation", "from_date": f"{nights[0]}T00:00:00Z", "to_date": f"{nights[-1]}T00:00:00Z",
            "max_active_runs": 2, "reprocess_behavior": "none", "run_backwards": False, "dag_run_conf": {}})
        if r.status_code not in (200, 201):
            raise SystemExit(f"backfill refused: {r.status_code} {r.text}")
        t_backfill = time.monotonic()
        mem_after_10: dict[str, int] = {}
        shown = 0
        while True:
            runs = httpx.get(f"{base}/api/v2/dags/nightly_evaluation/dagRuns", headers=h, timeout=60,
                             params={"limit": 1000, "run_type": "backfill"}).json()["dag_runs"]
            runs = [x for x in runs if x.get("run_type") == "backfill"]
            finished = [x for x in runs if x["state"] in ("success", "failed")]
            if len(finished) >= 10 and not mem_after_10:
                mem_after_10 = {k: _rss(pid, TREE[k]) for k, pid in watched.items()}
            if len(finished) // 5 > shown:
                shown = len(finished) // 5
                print(f"{len(finished):3d}/{a.dates} dates done, {time.monotonic() - t_backfill:6.0f} s, "
                      + ", ".join(f"{k} {_rss(pid, TREE[k]) / 2**20:.0f} MiB" for k, pid in watched.items()), flush=True)
            if len(finished) == a.dates:
                break
            if proc.poll() is not None:
                raise SystemExit(f"vigil airflow exited ({proc.returncode}); see {root / 'vigil-airflow.log'}")
            time.sleep(5)
        seconds = time.monotonic() - t_backfill
        mem_end = {k: _rss(pid, TREE[k]) for k, pid in watched.items()}
        failed = [x["dag_run_id"] for x in runs if x["state"] != "success"]
        if failed:
            failures.append(f"{len(failed)} runs not green: {failed[:5]}")

        from vigil.storage.warehouse import ready_engine

        with ready_engine().connect() as c:
            ok, bad = c.execute(sa.text(
                "SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed') "
                "FROM evaluations WHERE suite = 'evaluate-sklearn' AND logical_date BETWEEN :a AND :b"),
                {"a": nights[0], "b": nights[-1]}).one()
            pairs = c.execute(sa.text(
                "SELECT count(DISTINCT (model_version_id, logical_date)) FROM evaluations "
                "WHERE suite = 'evaluate-sklearn' AND logical_date BETWEEN :a AND :b"), {"a": nights[0], "b": nights[-1]}).scalar()
        expected = a.dates * a.versions
        if (ok, bad, pairs) != (expected, 0, expected):
            failures.append(f"evaluations: {ok} succeeded, {bad} failed, {pairs} version-dates; expected {expected}, 0, {expected}")
        print(f"\n{a.dates} dates x {a.versions} versions back-filled in {seconds:.0f} s "
              f"({seconds / a.dates:.1f} s a date); runs green {a.dates - len(failed)}/{a.dates}; "
              f"nightly evaluations {ok} (expected {expected}), failed {bad}")
        for k in watched:
            ratio = mem_end[k] / mem_after_10[k]
            print(f"{k:10s} RSS after 10 dates {mem_after_10[k] / 2**20:7.1f} MiB, at the end {mem_end[k] / 2**20:7.1f} MiB, "
                  f"ratio {ratio:.3f}")
            if ratio > 1.2:
                failures.append(f"{k} RSS grew {ratio:.2f}x after the first 10 dates")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        from vigil.storage.db import stop_embedded

        if not os.environ.get("VIGIL_DATABASE_URL"):
            stop_embedded()
        if not a.keep and not failures:
            shutil.rmtree(root, ignore_errors=True)
    for f in failures:
        print(f"FAIL: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
