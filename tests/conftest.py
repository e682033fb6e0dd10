"""Shared fixtures. Tests talk to a real PostgreSQL: VIGIL_TEST_DATABASE_URL when set, otherwise
an embedded server from the pgserver wheel started once for the session. Each test that asks
for a warehouse gets a fresh database cloned from a migrated template (fast, isolated)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
import warnings
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TEMPLATE_DB = "vigil_test_template"

# Property-based fuzzing: `make test` replays the same generated inputs every run (a CI failure is
# reproducible, not a roll of the dice); HYPOTHESIS_PROFILE=explore draws new ones, ten times as many.
from hypothesis import settings as _hyp_settings  # noqa: E402

_hyp_settings.register_profile("ci", derandomize=True, print_blob=True, max_examples=150)
_hyp_settings.register_profile("explore", derandomize=False, max_examples=1500)
_hyp_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
# pgserver logs from an atexit hook, after pytest has closed the streams: keep it quiet.
logging.getLogger("pgserver").setLevel(logging.WARNING)


def _admin(url):
    return sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


_SERVER: dict = {}


def _start_server():
    """Start (once) the PostgreSQL this test session uses; returns its URL without a database."""
    if _SERVER:
        return _SERVER["url"]
    env = os.environ.get("VIGIL_TEST_DATABASE_URL")
    if env:
        url = make_url(env)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        _SERVER["url"] = url
        return url
    # Short path: the unix socket lives in the data dir and socket paths are limited to ~107 bytes.
    root = Path(tempfile.mkdtemp(prefix="vigil-pg-", dir="/tmp"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        srv = pgserver.get_server(root / "pg", cleanup_mode=None)
    _SERVER.update(root=root, srv=srv, url=sa.engine.URL.create(
        "postgresql+psycopg", username="postgres", database="postgres", query={"host": str(root / "pg")}))
    return _SERVER["url"]


def pytest_configure(config):
    """Point Airflow at a metadata database on the test server before anything imports airflow
    (Airflow reads its configuration once, at import)."""
    url = _start_server()
    name = f"airflow_test_{uuid.uuid4().hex[:8]}"
    with _admin(url).connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    _SERVER["airflow_db"] = name
    logs = Path(tempfile.mkdtemp(prefix="vigil-airflow-logs-"))
    _SERVER["logs"] = logs
    os.environ.update({
        "AIRFLOW_HOME": str(Path(__file__).resolve().parents[1]),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url.set(drivername="postgresql+psycopg2", database=name)
        .render_as_string(hide_password=False),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(logs),
        "AIRFLOW__LOGGING__DAG_PROCESSOR_CHILD_PROCESS_LOG_DIRECTORY": str(logs / "dag_processor"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(logs / "passwords.json"),
        # retries after 10 s, not airflow.cfg's 120: the outage tests wait for a real retry
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "10",
    })


def pytest_unconfigure(config):
    import sys

    if "airflow.settings" in sys.modules:  # close Airflow's pool before its server goes away
        sys.modules["airflow.settings"].dispose_orm()
    if "srv" in _SERVER:
        from pgserver._commands import pg_ctl

        srv = _SERVER["srv"]
        pg_ctl(["-w", "stop", "-m", "immediate"], pgdata=srv.pgdata, user=srv.system_user)
        shutil.rmtree(_SERVER["root"], ignore_errors=True)
    elif "airflow_db" in _SERVER:
        with _admin(_SERVER["url"]).connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{_SERVER["airflow_db"]}" WITH (FORCE)'))
    if "logs" in _SERVER:
        shutil.rmtree(_SERVER["logs"], ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server():
    """URL (database left to the caller) of the real PostgreSQL server of this test session."""
    return _start_server()


@pytest.fixture(scope="session")
def airflow_db():
    """Airflow's metadata database, migrated (for dag.test())."""
    from airflow.utils import db

    db.initdb()
    return os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


@pytest.fixture(scope="session")
def pg_template(pg_server):
    """A database migrated to head once per session, cloned by every `warehouse_url`."""
    from vigil.storage.db import get_engine
    from vigil.storage.warehouse import migrate

    name = f"{TEMPLATE_DB}_{uuid.uuid4().hex[:8]}"
    url = pg_server.set(database=name)
    migrate(url)
    get_engine(url).dispose()  # CREATE DATABASE ... TEMPLATE needs the template idle
    yield name
    with _admin(pg_server).connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def fresh_database(pg_server):
    """Factory: an empty, unmigrated database (for migration tests)."""
    created = []

    def make():
        name = f"vigil_t_{uuid.uuid4().hex[:12]}"
        with _admin(pg_server).connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return pg_server.set(database=name)

    yield make
    from vigil.storage.db import get_engine

    with _admin(pg_server).connect() as c:
        for name in created:
            get_engine(pg_server.set(database=name)).dispose()
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def vigil_env(tmp_path, monkeypatch):
    """Isolated data dir and site dir for code that reads settings from the environment."""
    monkeypatch.setenv("VIGIL_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("VIGIL_SITE_DIR", str(tmp_path / "site"))
    monkeypatch.setenv("VIGIL_IMPORT_ROOTS", str(tmp_path))
    return tmp_path


@pytest.fixture
def warehouse_url(pg_server, pg_template, vigil_env, monkeypatch):
    """A fresh, migrated warehouse database; VIGIL_DATABASE_URL points at it for the test."""
    from vigil.storage.db import get_engine

    name = f"vigil_t_{uuid.uuid4().hex[:12]}"
    with _admin(pg_server).connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    url = pg_server.set(database=name)
    monkeypatch.setenv("VIGIL_DATABASE_URL", url.render_as_string(hide_password=False))
    yield url
    get_engine(url).dispose()
    with _admin(pg_server).connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def engine(warehouse_url):
    from vigil.storage.db import get_engine

    return get_engine(warehouse_url)


@pytest.fixture
def registry(engine):
    from vigil.registry.versions import Registry

    return Registry(engine)


@pytest.fixture(scope="session")
def sk_dir(tmp_path_factory) -> Path:
    """A generated dataset, two trained classifiers (GB, LR) and their held-out evaluations."""
    from gpu_trainer import sklearn_data
    from gpu_trainer.stages import evaluate_sklearn as E
    from gpu_trainer.stages import train_sklearn as T

    root = tmp_path_factory.mktemp("sk")
    data = sklearn_data.write("synthetic", root / "data.parquet", rows=1600, seed=3)
    for strat, hp in (("gradient_boosting", {"n_estimators": 60}), ("logistic_regression", {})):
        T.run(T.Spec(dataset=str(data), target="label", strategy=strat, model_name=f"clf-{strat}",
                     hyperparameters=hp, cv_folds=0, n_boot=200), str(root / strat))
        E.run(E.Spec(model=str(root / strat / "model"), dataset=str(data), cv_folds=0, n_boot=200, explain_rows=100),
              str(root / f"{strat}-eval"))
    return root


@pytest.fixture(scope="session")
def small_chain(tmp_path_factory) -> dict[str, Path]:
    """The reduced tiny-model lifecycle chain (base, backdoor, validate, probes, safety,
    persistence, evaluate), trained once per session for every test that reads stage outputs."""
    from tests.trainer.conftest import build_small_chain

    return build_small_chain(tmp_path_factory.mktemp("chain"))


@pytest.fixture
def small_tmpfs(tmp_path):
    """Factory: a real, small filesystem (tmpfs of the given size) for disk-full faults. Needs root
    and mount; the test says why when it skips."""
    import subprocess

    mounted = []

    def make(size: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root")
        mnt = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
        mnt.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True, text=True)
        if r.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        mounted.append(mnt)
        return mnt

    yield make
    for mnt in mounted:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
