"""The stage tasks on an object store (issue 16, part 2): with VIGIL_STORAGE_URL=s3://... on moto's
standalone S3 server on 127.0.0.1 (the test's endpoint, never the product's default), credentials
from an Airflow connection, real Airflow dag.test(), real PostgreSQL, real stage processes.

train_sklearn: spec (uploaded with its inputs) -> run (in scratch, outputs uploaded, manifest last)
-> record (fetched by the manifest's sha256, URLs registered, Parquet into the store). Then the
worker's local folders are wiped, as if another worker with an empty scratch took over, and
nightly_evaluation evaluates that version: its input is fetched from the store by the registered
sha256 and the evaluation recorded from the store."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from tests.airflow.conftest import dagbag
from tests.core.test_object_store import BUCKET, s3_endpoint  # noqa: F401  (the moto server fixture)
from vigil.registry.versions import Registry
from vigil.settings import get_settings

pytestmark = [pytest.mark.airflow]
pytest.importorskip("s3fs", reason="the fleet extra: pip install -e '.[fleet]'")

DAY = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


@pytest.fixture
def s3_fleet(s3_endpoint, module_warehouse, monkeypatch):  # noqa: F811
    prefix = f"fleet-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("VIGIL_STORAGE_URL", f"s3://{BUCKET}/{prefix}")
    monkeypatch.setenv("VIGIL_STORAGE_CONN_ID", "vigil_s3_test")
    monkeypatch.setenv("AIRFLOW_CONN_VIGIL_S3_TEST", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing-secret",
        "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}}))
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)  # the connection, nothing else, holds the keys
    import s3fs

    fs = s3fs.S3FileSystem(key="testing", secret="testing-secret", skip_instance_cache=True, use_listings_cache=False,
                           client_kwargs={"endpoint_url": s3_endpoint, "region_name": "us-east-1"})
    return fs, f"{BUCKET}/{prefix}"


def test_a_stage_runs_through_s3_and_another_worker_uses_its_output(airflow_db, module_warehouse, s3_fleet, tmp_path,
                                                                    caplog):
    from gpu_trainer.sklearn_data import write

    fs, root = s3_fleet
    data_dir = get_settings().data_dir
    dataset = write("breast_cancer", tmp_path / "bc.parquet")
    conf = {"dataset_path": str(dataset), "dataset_name": "bc-s3", "target": "diagnosis", "cv_folds": 2,
            "model_name": "bc-s3"}
    assert dagbag().dags["train_sklearn"].test(logical_date=DAY, run_conf=conf).state == "success"

    reg = Registry(module_warehouse)
    v = reg.get("bc-s3:1")
    assert v.artifact_uri.startswith(f"s3://{root}/artifacts/train_sklearn/") and v.sha256
    out = v.artifact_uri.rsplit("/", 1)[0].removeprefix("s3://")
    stored = {p.rsplit("/", 1)[-1] for p in fs.ls(out)}
    assert {"spec.json", "inputs.json", "manifest.json"} <= stored
    manifest = json.loads(fs.cat_file(f"{out}/manifest.json"))
    assert not any(str(data_dir) in s for s in json.dumps(manifest["params"]).split('"')), "scratch paths leaked"
    assert fs.glob(f"{root}/warehouse/predictions/date=*/key={v.id}-train-sklearn/part.parquet")
    assert not (data_dir / "warehouse").exists()  # the Parquet half lives in the store too
    assert reg.verify_hashes("bc-s3:1")["ok"]

    # Another worker: nothing of this one's local folders is left; everything comes from the store.
    shutil.rmtree(data_dir / "artifacts", ignore_errors=True)
    shutil.rmtree(data_dir / "scratch", ignore_errors=True)
    nightly = dagbag().dags["nightly_evaluation"]
    assert nightly.test(logical_date=DAY, run_conf={"scan": False}).state == "success"
    with module_warehouse.connect() as c:
        ev = c.execute(sa.text("SELECT status, details FROM evaluations WHERE model_version_id = :v "
                               "AND suite = 'evaluate-sklearn'"), {"v": v.id}).one()
    assert ev.status == "succeeded" and ev.details["manifest_dir"].startswith(f"s3://{root}/artifacts/nightly_evaluation/")
    assert list((data_dir / "scratch" / "cas" / v.sha256).iterdir())  # fetched by the registered sha256
    assert fs.glob(f"{root}/warehouse/predictions/date=*/key={v.id}-evaluate-sklearn/part.parquet")
    assert "testing-secret" not in caplog.text
