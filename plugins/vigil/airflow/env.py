"""The environment Airflow runs in under Vigil's embedded default.

AIRFLOW_HOME is the repository root (airflow.cfg lives there). What cannot be in airflow.cfg is
exported here: the metadata DB URL (a unix socket under the data dir) and the secrets (fernet
key, JWT secret), generated once into ``$VIGIL_DATA_DIR/airflow-secrets.env`` with mode 0600.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from vigil.settings import REPO_ROOT, Settings, SettingsError, get_settings
from vigil.storage.db import airflow_url, ensure_database


def _secrets(settings: Settings) -> dict[str, str]:
    path = settings.data_dir / "airflow-secrets.env"
    if not path.exists():
        from cryptography.fernet import Fernet

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        body = (
            f"AIRFLOW__CORE__FERNET_KEY={Fernet.generate_key().decode()}\n"
            f"AIRFLOW__API_AUTH__JWT_SECRET={secrets.token_urlsafe(32)}\n"
            f"AIRFLOW__API__SECRET_KEY={secrets.token_urlsafe(32)}\n"
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(body)
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def airflow_environ(settings: Settings | None = None) -> dict[str, str]:
    """Variables to add to the environment of any Airflow process Vigil starts."""
    settings = settings or get_settings()
    env = {
        "AIRFLOW_HOME": str(REPO_ROOT),
        # An explicitly configured metadata DB wins (production, tests); else the embedded one.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or airflow_url(settings),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": os.environ.get(
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(settings.data_dir / "airflow-passwords.json")),
        "VIGIL_DATA_DIR": str(settings.data_dir),
    }
    # Secrets given in the environment win over the generated file: every process of a fleet
    # (api-server, workers with their own VIGIL_DATA_DIR) must share the same JWT secret and key.
    env.update({k: v for k, v in _secrets(settings).items() if not os.environ.get(k)})
    return env


EXECUTORS = ("local", "celery")


class BrokerUnreachable(SettingsError):
    """The Celery broker does not answer; the message names it (without its password) and the fix."""


def safe_broker_url(url: str) -> str:
    """The broker URL with any password masked (for messages and logs)."""
    from kombu.utils.url import maybe_sanitize_url

    return maybe_sanitize_url(url)


def check_broker(url: str, timeout: float = 5.0) -> None:
    """Connect to the broker once; :class:`BrokerUnreachable` when it does not answer."""
    from kombu import Connection

    conn = Connection(url, connect_timeout=timeout, transport_options={"max_retries": 0})
    try:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
    except Exception as e:  # kombu raises the transport's own errors (redis, amqp, socket)
        reason = (str(e).replace(url, safe_broker_url(url)) or type(e).__name__).rstrip(". ")
        raise BrokerUnreachable(
            f"the Celery broker {safe_broker_url(url)} (VIGIL_CELERY_BROKER_URL) is not reachable: {reason}. "
            "Start Redis (port 6379) or RabbitMQ (port 5672) there, or point VIGIL_CELERY_BROKER_URL at one "
            "that runs, e.g. redis://127.0.0.1:6379/0 or amqp://guest:guest@127.0.0.1:5672//") from None
    finally:
        conn.release()


def executor_environ(executor: str, settings: Settings | None = None, *, metadata_url: str | None = None,
                     check: bool = True) -> dict[str, str]:
    """Airflow variables for ``executor``: ``local`` (the LocalExecutor, airflow.cfg's) or ``celery``
    (the CeleryExecutor, broker from VIGIL_CELERY_BROKER_URL, checked unless ``check`` is False,
    result backend the metadata database)."""
    if executor not in EXECUTORS:
        raise SettingsError(f"--executor {executor!r}: use one of {', '.join(EXECUTORS)}")
    if executor == "local":
        return {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}
    settings = settings or get_settings()
    broker = settings.require_broker()
    if check:
        check_broker(broker)
    metadata = metadata_url or os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or airflow_url(settings)
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": broker,
        # Task states go to the metadata database: nothing else to run or back up.
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata,
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": "default",
    }


def prepare_airflow(settings: Settings | None = None, quiet: bool = True) -> dict[str, str]:
    """Start the database, create Airflow's metadata DB and migrate it; returns the environment."""
    settings = settings or get_settings()
    env = airflow_environ(settings)  # starts the embedded server when needed
    ensure_database(make_url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]))
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], env={**os.environ, **env}, check=True,
                   stdout=subprocess.DEVNULL if quiet else None, stderr=subprocess.PIPE if quiet else None)
    return env
