"""The stage tasks on an object store (issue 16, part 2): with VIGIL_STORAGE_URL=s3://... on moto's
standalone S3 server on 127.0.0.1 (the test's endpoint, never the product's default), credentials
from an Airflow connection, real Airflow dag.test(), real PostgreSQL, real stage processes.

train_sklearn: spec (the user's local table uploaded by its sha256, the spec uploaded with its
inputs) -> run (the table moved away first: fetched from the store into scratch; outputs uploaded,
manifest last) -> record (fetched by the manifest's sha256, URLs registered, Parquet into the
store). Then the worker's local folders are wiped, as if another worker with an empty scratch took
over, and nightly_evaluation evaluates that version: its inputs are fetched from the store by
sha256 and the evaluation recorded from the store. Then that nightly chunk is retried on a third
"worker" (an empty scratch) with one more item: the finished item is kept, not run again."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from contract.hashing import sha256_path
from tests.airflow.conftest import dagbag
from tests.core.test_object_store import BUCKET, s3_endpoint  # noqa: F401  (the moto server fixture)
from vigil.lifecycle import stage_io
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
                                                                    caplog, monkeypatch):
    from gpu_trainer.sklearn_data import write

    fs, root = s3_fleet
    data_dir = get_settings().data_dir
    dataset = write("breast_cancer", tmp_path / "bc.parquet")
    dataset_sha = sha256_path(dataset)
    publish = stage_io.publish_spec

    def spec_then_move_the_table_away(written, inputs):  # the run task must not find the user's file
        out = publish(written, inputs)
        if dataset.exists():
            dataset.rename(tmp_path / "elsewhere.parquet")
        return out

    monkeypatch.setattr(stage_io, "publish_spec", spec_then_move_the_table_away)
    conf = {"dataset_path": str(dataset), "dataset_name": "bc-s3", "target": "diagnosis", "cv_folds": 2,
            "model_name": "bc-s3"}
    assert dagbag().dags["train_sklearn"].test(logical_date=DAY, run_conf=conf).state == "success"
    assert not dataset.exists()

    reg = Registry(module_warehouse)
    v = reg.get("bc-s3:1")
    assert v.artifact_uri.startswith(f"s3://{root}/artifacts/train_sklearn/") and v.sha256
    out = v.artifact_uri.rsplit("/", 1)[0].removeprefix("s3://")
    stored = {p.rsplit("/", 1)[-1] for p in fs.ls(out)}
    assert {"spec.json", "inputs.json", "manifest.json"} <= stored
    table_url = f"s3://{root}/inputs/{dataset_sha}/bc.parquet"  # the user's table, by its content
    assert json.loads(fs.cat_file(f"{out}/spec.json"))["dataset"] == table_url
    assert {"url": table_url, "sha256": dataset_sha, "kind": "artifact"} in json.loads(fs.cat_file(f"{out}/inputs.json"))
    assert list((data_dir / "scratch" / "cas" / dataset_sha).iterdir())  # the run fetched it from the store
    manifest = json.loads(fs.cat_file(f"{out}/manifest.json"))
    assert manifest["params"]["dataset"] == table_url
    assert not any(str(data_dir) in s for s in json.dumps(manifest["params"]).split('"')), "scratch paths leaked"
    assert fs.glob(f"{root}/warehouse/predictions/date=*/key={v.id}-train-sklearn/part.parquet")
    assert not (data_dir / "warehouse").exists()  # the Parquet half lives in the store too
    assert reg.verify_hashes("bc-s3:1")["ok"]

    # Another worker: nothing of this one's local folders is left; everything comes from the store.
    shutil.rmtree(data_dir / "artifacts", ignore_errors=True)
    shutil.rmtree(data_dir / "scratch", ignore_errors=True)
    nightly = dagbag().dags["nightly_evaluation"]
    # the night after the registration: DAY is taken at import, and a run that crosses midnight UTC
    # would otherwise ask for the versions registered by the end of yesterday (none; seen in CI)
    night = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    assert nightly.test(logical_date=night, run_conf={"scan": False}).state == "success"
    with module_warehouse.connect() as c:
        ev = c.execute(sa.text("SELECT status, details FROM evaluations WHERE model_version_id = :v "
                               "AND suite = 'evaluate-sklearn'"), {"v": v.id}).one()
    assert ev.status == "succeeded" and ev.details["manifest_dir"].startswith(f"s3://{root}/artifacts/nightly_evaluation/")
    assert ev.details["dataset"] == table_url
    assert list((data_dir / "scratch" / "cas" / v.sha256).iterdir())  # fetched by the registered sha256
    assert list((data_dir / "scratch" / "cas" / dataset_sha).iterdir())  # the table too, by its own
    assert fs.glob(f"{root}/warehouse/predictions/date=*/key={v.id}-evaluate-sklearn/part.parquet")
    assert "testing-secret" not in caplog.text

    _a_retried_chunk_keeps_what_a_previous_attempt_finished(fs, root, tmp_path)


def _a_retried_chunk_keeps_what_a_previous_attempt_finished(fs, root, tmp_path):
    """The nightly chunk above uploaded its item finished (done marker + manifest). Its retry on a
    worker with an empty scratch, with a second item added, keeps the first and runs the second;
    under another run token nothing is kept."""
    from contract.batch import spec_digest
    from contract.stages import STAGES
    from vigil.airflow.stage_runner import stage_command, trainer_executable
    from vigil.storage.objects import default_store

    store = default_store()
    [batch_key] = fs.glob(f"{root}/artifacts/nightly_evaluation/**/batch-spec.json")
    batch = json.loads(fs.cat_file(batch_key))
    [first] = batch["items"]
    assert batch["run_token"] and fs.exists(first["out_dir"].removeprefix("s3://") + "/batch-item.json")
    first_manifest = fs.info(first["out_dir"].removeprefix("s3://") + "/manifest.json")
    twin_dir = first["out_dir"] + "-twin"  # a second version of the chunk: the same spec, its own folder
    spec_dir = first["spec_path"].rsplit("/", 1)[0]
    for name in ("spec.json", "inputs.json"):
        fs.pipe_file(f"{twin_dir}/{name}".removeprefix("s3://"), fs.cat_file(f"{spec_dir}/{name}".removeprefix("s3://")))
    items = [first, {"key": "twin", "spec_path": f"{twin_dir}/spec.json", "out_dir": twin_dir}]

    def retry(token: str, items: list[dict], name: str) -> dict[str, str]:
        out = batch_key.rsplit("/", 2)[0] + f"/{name}"
        fs.pipe_file(f"{out}/batch-spec.json", json.dumps({**batch, "run_token": token, "items": items}).encode())
        argv = [str(a) for a in stage_command(STAGES[batch["stage"]], f"s3://{out}/batch-spec.json", f"s3://{out}",
                                              executable=trainer_executable(), stage_arg="batch")]
        stage_io.run_through_store(store, argv, tmp_path / f"scratch-{name}",
                                   lambda local: subprocess.run(local, check=True, timeout=120))
        return {r["key"]: r["status"] for r in json.loads(fs.cat_file(f"{out}/batch.json"))["items"]}

    assert retry(batch["run_token"], items, "batch-retry") == {first["key"]: "kept", "twin": "succeeded"}
    assert fs.info(first["out_dir"].removeprefix("s3://") + "/manifest.json")["ETag"] == first_manifest["ETag"]
    assert fs.exists(twin_dir.removeprefix("s3://") + "/manifest.json")
    # only for the same run token: another run of the chunk finds nothing to keep and evaluates afresh
    text = fs.cat_file(first["spec_path"].removeprefix("s3://")).decode()
    assert not stage_io._seed_finished(store, first["out_dir"], tmp_path / "other", spec_digest("another-run", text), "x")
    assert stage_io._seed_finished(store, first["out_dir"], tmp_path / "same", spec_digest(batch["run_token"], text), "x")


def test_a_local_input_missing_on_the_spec_worker_is_refused_naming_the_form_field(module_warehouse, s3_fleet,
                                                                                    tmp_path):
    from vigil.lifecycle.specs import write_spec
    from vigil.storage.objects import StorageError

    with pytest.raises(StorageError, match=r"form field 'dataset_path' \(spec field 'dataset'\): "
                                           r"/nowhere/bc\.parquet does not exist on this worker .*every worker"):
        write_spec(tmp_path / "out", "train-sklearn", {"dataset": "/nowhere/bc.parquet", "target": "y"},
                   {"dataset": "dataset_path"})
    assert not (tmp_path / "out").exists()
