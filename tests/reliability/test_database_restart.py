"""PostgreSQL stopped during a nightly run, then back: the run completes with exactly one
evaluation per version and date. Both kinds of warehouse server, each stopped for real (pg_ctl)
while a stage's `run` task is mid-way, so the next warehouse task finds the database gone:

- embedded (no VIGIL_DATABASE_URL): Vigil owns that server, so the next task starts it again and
  the run goes on without a failed try;
- external (VIGIL_DATABASE_URL): Vigil must not start someone else's server; the task fails with a
  one-line error naming the database, Airflow retries it (the nightly DAG has one retry) and, with
  the server back, the retry succeeds.

The Airflow metadata database is the test session's server throughout, as in production where the
warehouse may live elsewhere."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.airflow.conftest import dagbag
from vigil.registry.versions import RunRef

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

# Versions are registered now; a nightly date evaluates what was registered by then.
TODAY = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
NIGHTS = (TODAY + timedelta(days=1), TODAY + timedelta(days=2))


def _pg_ctl(pgdata: Path, *args: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver._commands import pg_ctl

    pg_ctl(["-w", *args], pgdata=pgdata, user=pgserver.get_server(pgdata, cleanup_mode=None).system_user)


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError, IndexError):
        return None


def _airflow_tis(night: datetime) -> list[tuple[str, str, int]]:
    """(task_id, state, try_number) of the nightly run on ``night``, from the metadata database."""
    eng = sa.create_engine(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], poolclass=sa.pool.NullPool)
    with eng.connect() as c:
        rows = c.execute(sa.text(
            "SELECT ti.task_id, ti.state, ti.try_number FROM task_instance ti JOIN dag_run dr "
            "ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id "
            "WHERE ti.dag_id = 'nightly_evaluation' AND dr.logical_date = :d"), {"d": night}).all()
    eng.dispose()
    return [(r.task_id, r.state, r.try_number) for r in rows]


class Outage(threading.Thread):
    """Stops the server as soon as a stage's `run` task of ``night`` is running (the stage takes
    seconds, so the stop lands mid-run); with ``restart_after_failure`` it starts the server again
    once a task has failed for it (up_for_retry), before the retry is due."""

    def __init__(self, pgdata: Path, night: datetime, restart_after_failure: bool):
        super().__init__(daemon=True)
        self.pgdata, self.night, self.restart = pgdata, night, restart_after_failure
        self.stopped_pid: int | None = None
        self.failed_task: str | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                if any(t.endswith(".run") and s == "running" for t, s, _ in _airflow_tis(self.night)):
                    break
                time.sleep(0.1)
            else:
                raise AssertionError("no stage run task of the night ever ran")
            self.stopped_pid = _postmaster_pid(self.pgdata)
            _pg_ctl(self.pgdata, "stop", "-m", "fast")
            if not self.restart:
                return
            while time.monotonic() < deadline:
                waiting = [t for t, s, _ in _airflow_tis(self.night) if s == "up_for_retry"]
                if waiting:
                    self.failed_task = waiting[0]
                    break
                time.sleep(0.1)
            _pg_ctl(self.pgdata, "start", "-o", '-h ""', "-o", f"-k {self.pgdata}", "-l", str(self.pgdata / "log"))
        except BaseException as e:  # surfaced by the test, not lost in a thread
            self.error = e


@pytest.fixture
def short_dir():
    # unix socket paths are limited to ~107 bytes: the server's data dir must have a short path
    d = Path(tempfile.mkdtemp(prefix="vg-", dir="/tmp"))
    yield d
    for pgdata in (d / "var" / "pg", d / "ext"):
        if _postmaster_pid(pgdata):
            _pg_ctl(pgdata, "stop", "-m", "immediate")
    shutil.rmtree(d, ignore_errors=True)


def _evaluations_by_night(engine) -> dict[str, int]:
    with engine.connect() as c:
        rows = c.execute(sa.text(
            "SELECT logical_date AS d, count(*) AS n, count(DISTINCT model_version_id) AS v FROM evaluations "
            "WHERE suite = 'evaluate-sklearn' AND status = 'succeeded' GROUP BY 1")).all()
    return {str(r.d): (r.n, r.v) for r in rows}


@pytest.mark.parametrize("kind", [pytest.param("embedded", id="embedded"), pytest.param("external", id="external")])
def test_nightly_run_completes_when_postgres_is_stopped_mid_run(kind, airflow_db, sk_dir, short_dir, monkeypatch, capfd):
    from vigil.registry.ingest import record_stage
    from vigil.storage.parquet_store import default_store
    from vigil.storage.warehouse import ready_engine

    monkeypatch.setenv("VIGIL_DATA_DIR", str(short_dir / "var"))
    monkeypatch.setenv("VIGIL_SITE_DIR", str(short_dir / "site"))
    monkeypatch.setenv("VIGIL_STAGE_RUNNER", "local")
    monkeypatch.delenv("VIGIL_DATABASE_URL", raising=False)
    if kind == "embedded":
        pgdata = short_dir / "var" / "pg"
    else:
        pgdata = short_dir / "ext"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            pgserver.get_server(pgdata, cleanup_mode=None)
        monkeypatch.setenv("VIGIL_DATABASE_URL", f"postgresql+psycopg://postgres@/vigil?host={pgdata}")

    engine = ready_engine()
    assert _postmaster_pid(pgdata), f"the {kind} warehouse server is not the one under {pgdata}"
    for strat in ("gradient_boosting", "logistic_regression"):
        record_stage(engine, sk_dir / strat, RunRef("train_sklearn", f"r-{strat}", "train_sklearn.record", TODAY),
                     store=default_store())

    dag = dagbag().dags["nightly_evaluation"]
    assert dag.test(logical_date=NIGHTS[0]).state == "success"

    outage = Outage(pgdata, NIGHTS[1], restart_after_failure=(kind == "external"))
    outage.start()
    capfd.readouterr()
    dr = dag.test(logical_date=NIGHTS[1])
    task_logs = "".join(capfd.readouterr())
    outage.join(timeout=120)
    assert outage.error is None, outage.error
    assert outage.stopped_pid, "the server was not running when the outage began"
    tis = _airflow_tis(NIGHTS[1])
    assert dr.state == "success", tis

    if kind == "embedded":
        # the next task started Vigil's own server again: a new postmaster, and no task had to retry
        assert _postmaster_pid(pgdata) not in (None, outage.stopped_pid)
        assert all(tries <= 1 for _, _, tries in tis), tis
    else:
        assert outage.failed_task, f"no task failed while the server was down: {tis}"
        retried = [t for t, _, tries in tis if tries == 2]
        assert outage.failed_task in retried, tis
        errors = {line for line in task_logs.splitlines() if line.startswith("vigil.storage.db.DatabaseError")}
        assert errors, task_logs[-3000:]
        for error in errors:  # one line: what is unreachable, why, and what to do
            assert "warehouse database unreachable at postgresql+psycopg://postgres@" in error and "VIGIL_DATABASE_URL" in error

    # exactly one evaluation per version and night, nothing left over from the failed try
    engine = ready_engine()
    assert _evaluations_by_night(engine) == {str(n.date()): (2, 2) for n in NIGHTS}
    # the same Parquet partitions for the night of the outage as for the quiet night before it
    root = default_store().root

    def partitions(night: datetime) -> list[str]:
        return sorted(str(p.relative_to(root)).replace(str(night.date()), "D")
                      for p in root.glob(f"*/date={night.date()}/*/*.parquet"))

    assert partitions(NIGHTS[0]) and partitions(NIGHTS[1]) == partitions(NIGHTS[0])
