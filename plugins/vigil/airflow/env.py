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

from vigil.settings import REPO_ROOT, Settings, get_settings
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
    env.update(_secrets(settings))
    return env


def prepare_airflow(settings: Settings | None = None, quiet: bool = True) -> dict[str, str]:
    """Start the database, create Airflow's metadata DB and migrate it; returns the environment."""
    settings = settings or get_settings()
    env = airflow_environ(settings)  # starts the embedded server when needed
    ensure_database(make_url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]))
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], env={**os.environ, **env}, check=True,
                   stdout=subprocess.DEVNULL if quiet else None, stderr=subprocess.PIPE if quiet else None)
    return env
