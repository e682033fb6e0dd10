"""`vigil airflow --executor celery` and `vigil worker` against the real brokers of this machine
(Redis on 6379, RabbitMQ on 5672): the executor's settings, the clear message for a missing or
unreachable broker (its password never printed), and a real Celery worker started by
`vigil worker` that joins the broker and serves exactly the queues it was given."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

from vigil.airflow.env import BrokerUnreachable, check_broker, executor_environ
from vigil.settings import SettingsError, get_settings

VIGIL = [sys.executable, "-m", "vigil.cli"]
REDIS = "redis://127.0.0.1:6379/7"
RABBIT = "amqp://guest:guest@127.0.0.1:5672//"


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _broker(url: str, port: int):
    if not _listening(port):
        pytest.skip(f"no broker on 127.0.0.1:{port} on this machine (Redis 6379 / RabbitMQ 5672); "
                    "CI machines of this kind run both")
    return url


BROKERS = [pytest.param((REDIS, 6379), id="redis"), pytest.param((RABBIT, 5672), id="rabbitmq")]


def vigil(*args, env=None, timeout=120):
    return subprocess.run([*VIGIL, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("broker", BROKERS)
def test_celery_executor_environment(broker, monkeypatch):
    url = _broker(*broker)
    monkeypatch.setenv("VIGIL_CELERY_BROKER_URL", url)
    env = executor_environ("celery", metadata_url="postgresql+psycopg2://u:pw@db/airflow")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == url
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql+psycopg2://u:pw@db/airflow"
    assert executor_environ("local") == {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}


def test_unreachable_broker_is_named_without_its_password():
    with pytest.raises(BrokerUnreachable) as e:
        check_broker("redis://:hunter2@127.0.0.1:1/0", timeout=2)
    msg = str(e.value)
    assert "hunter2" not in msg and "127.0.0.1:1" in msg and "VIGIL_CELERY_BROKER_URL" in msg
    with pytest.raises(BrokerUnreachable, match="amqp://guest:\\*\\*@127.0.0.1:1//") as e:
        check_broker("amqp://guest:hunter2@127.0.0.1:1//", timeout=2)
    assert "hunter2" not in str(e.value)


@pytest.mark.parametrize("value, match", [
    ("", "needs a broker: set VIGIL_CELERY_BROKER_URL"),
    ("http://127.0.0.1:6379", "VIGIL_CELERY_BROKER_URL must start with"),
    ("127.0.0.1:6379", "no scheme"),
])
def test_bad_broker_setting_names_the_variable(value, match, monkeypatch):
    monkeypatch.setenv("VIGIL_CELERY_BROKER_URL", value)
    with pytest.raises(SettingsError, match=match):
        get_settings().require_broker()


def test_vigil_airflow_says_so_before_starting_anything(tmp_path):
    """No broker set / broker down: exit 2 with the fix, nothing started, no password shown."""
    env = {"VIGIL_DATA_DIR": str(tmp_path / "var"), "VIGIL_CELERY_BROKER_URL": ""}
    p = vigil("airflow", "--executor", "celery", env=env)
    assert p.returncode == 2 and "set VIGIL_CELERY_BROKER_URL" in p.stderr
    p = vigil("airflow", "--executor", "celery", env={**env, "VIGIL_CELERY_BROKER_URL": "redis://:hunter2@127.0.0.1:1/0"})
    assert p.returncode == 2 and "is not reachable" in p.stderr and "hunter2" not in p.stderr + p.stdout
    assert not (tmp_path / "var" / "airflow-logs").exists()  # nothing was started
    p = vigil("worker", "--queues", "gpu;rm", env=env)
    assert p.returncode == 2 and "--queues" in p.stderr


@pytest.mark.parametrize("broker", BROKERS)
def test_vigil_worker_joins_the_broker_on_its_queues(broker, tmp_path):
    """A real Celery worker (`airflow celery worker` under `vigil worker`) on queue gpu only."""
    from celery import Celery

    url = _broker(*broker)
    name = f"gpu-{uuid.uuid4().hex[:6]}@vigil-test"
    log = open(tmp_path / "worker.log", "w")
    proc = subprocess.Popen([*VIGIL, "worker", "--queues", "gpu", "--concurrency", "1", "--hostname", name],
                            env={**os.environ, "VIGIL_DATA_DIR": str(tmp_path / "scratch"), "VIGIL_CELERY_BROKER_URL": url},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    app = Celery(broker=url)
    try:
        queues = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            replies = app.control.inspect(destination=[name], timeout=2).active_queues() or {}
            if name in replies:
                queues = [q["name"] for q in replies[name]]
                break
            time.sleep(1)
        assert queues == ["gpu"], f"worker did not join on queue gpu; log:\n{(tmp_path / 'worker.log').read_text()[-3000:]}"
    finally:
        app.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
    assert "hunter2" not in (tmp_path / "worker.log").read_text()


def test_secrets_given_in_the_environment_win_over_the_generated_file(tmp_path, monkeypatch):
    """Workers with their own VIGIL_DATA_DIR must share the api-server's JWT secret and Fernet key."""
    from vigil.airflow.env import airflow_environ

    monkeypatch.setenv("VIGIL_DATA_DIR", str(tmp_path / "worker-scratch"))
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "the-fleet-secret")
    env = airflow_environ()
    assert "AIRFLOW__API_AUTH__JWT_SECRET" not in env  # the environment's value stays
    assert env["AIRFLOW__CORE__FERNET_KEY"]  # what the environment lacks still comes from the file
