"""The storage layer against a real S3 server: moto's standalone server on 127.0.0.1 (what s3fs's
own tests use; the test's S3 endpoint, never the product's default), reached over HTTP by s3fs.
And the embedded default, a local folder used in place."""

from __future__ import annotations

import json
import socket

import pytest

from contract.hashing import sha256_path
from vigil.storage.objects import ObjectStore, StorageError, default_store, storage_url

s3fs = pytest.importorskip("s3fs", reason="the fleet extra: pip install -e '.[fleet]'")

BUCKET = "vigil-test"


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing-secret").create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture
def s3_store(s3_endpoint):
    opts = {"key": "testing", "secret": "testing-secret", "client_kwargs": {"endpoint_url": s3_endpoint,
                                                                              "region_name": "us-east-1"},
            "skip_instance_cache": True}
    return ObjectStore(f"s3://{BUCKET}/store", opts)


def stage_output(root):
    """A stage's output folder: a model folder and the manifest naming its digest."""
    out = root / "out"
    (out / "model").mkdir(parents=True)
    (out / "model" / "weights.safetensors").write_bytes(b"\x00weights" * 1000)
    (out / "model" / "config.json").write_text('{"layers": 4}')
    digest = sha256_path(out / "model")
    (out / "manifest.json").write_text(json.dumps({"artifacts": [{"path": "model", "sha256": digest}]}))
    return out, digest


def test_default_is_the_data_dir_used_in_place(vigil_env, monkeypatch):
    monkeypatch.delenv("VIGIL_STORAGE_URL", raising=False)
    store = default_store()
    assert store.is_local and store.url == f"file://{vigil_env / 'var'}"
    out, digest = stage_output(vigil_env / "var" / "artifacts" / "run1")
    url = store.upload(out, "artifacts/run1/out")  # already in place: nothing copied
    assert url == f"{store.url}/artifacts/run1/out"
    assert store.fetch(url + "/model", digest, vigil_env / "scratch") == out / "model"
    assert not (vigil_env / "scratch").exists()
    (out / "model" / "config.json").write_text('{"layers": 5}')
    with pytest.raises(StorageError, match="does not match the registered"):
        store.fetch(url + "/model", digest, vigil_env / "scratch")


@pytest.mark.parametrize("value, match", [
    ("bucket/prefix", "VIGIL_STORAGE_URL=.*is not a URL"),
    ("s3://AKIA:secret@bucket/prefix", "carries credentials"),
    ("file://relative/dir", "absolute path"),
])
def test_bad_storage_url_names_the_variable(value, match, vigil_env, monkeypatch):
    monkeypatch.setenv("VIGIL_STORAGE_URL", value)
    with pytest.raises(StorageError, match=match) as e:
        storage_url()
    assert "secret" not in str(e.value).replace("secrets", "")


def test_upload_then_fetch_on_another_worker_verified_and_cached(s3_store, tmp_path):
    out, digest = stage_output(tmp_path / "worker-a")
    url = s3_store.upload(out, "artifacts/dag/run/train/out")
    assert s3_store.exists(url + "/manifest.json")
    manifest = json.loads(s3_store.read_bytes(url + "/manifest.json"))
    assert manifest["artifacts"][0]["sha256"] == digest

    scratch_b = tmp_path / "worker-b"  # another worker: its own empty scratch
    got = s3_store.fetch(url + "/model", digest, scratch_b)
    assert got == scratch_b / "cas" / digest / "model"
    assert sha256_path(got) == digest and (got / "config.json").read_text() == '{"layers": 4}'
    # content-addressed: the second fetch does not go to the store (even once the object is gone)
    s3_store.fs.rm(s3_store._path(url + "/model"), recursive=True)
    assert s3_store.fetch(url + "/model", digest, scratch_b) == got
    with pytest.raises(StorageError, match="not in the store"):
        s3_store.fetch(url + "/model", digest, tmp_path / "worker-c")


def test_a_tampered_artifact_is_refused_and_not_cached(s3_store, tmp_path):
    out, digest = stage_output(tmp_path / "a")
    url = s3_store.upload(out, "artifacts/tampered/out")
    s3_store.fs.pipe_file(s3_store._path(url + "/model/config.json"), b'{"layers": 40}')
    scratch = tmp_path / "b"
    with pytest.raises(StorageError, match="does not match the registered"):
        s3_store.fetch(url + "/model", digest, scratch)
    assert not any((scratch / "cas").iterdir())  # no partial or wrong copy left behind


def test_single_file_and_bad_keys(s3_store, tmp_path):
    f = tmp_path / "probe.json"
    f.write_text("[1, 2, 3]")
    url = s3_store.upload(f, "artifacts/x/probe.json")
    assert s3_store.fetch(url, sha256_path(f), tmp_path / "s").read_text() == "[1, 2, 3]"
    for key in ("../escape", "/abs", "a//b", "a/./b"):
        with pytest.raises(StorageError, match="store key"):
            s3_store.key_url(key)
    with pytest.raises(StorageError, match="not in the store"):
        s3_store.fetch("s3://other-bucket/x", "0" * 64, tmp_path / "s")


def test_parquet_through_the_same_store(s3_store):
    import pyarrow as pa
    import pyarrow.parquet as pq

    fs, root = s3_store.arrow_filesystem()
    path = f"{root}/warehouse/generations/date=2026-11-29/key=v1/part.parquet"
    pq.write_table(pa.table({"prompt": ["a", "b"], "activated": [True, False]}), path, filesystem=fs)
    assert pq.read_table(path, filesystem=fs).to_pydict() == {"prompt": ["a", "b"], "activated": [True, False]}


def test_credentials_from_an_airflow_connection(s3_endpoint, monkeypatch, tmp_path):
    """VIGIL_STORAGE_CONN_ID names an Airflow connection (here AIRFLOW_CONN_<ID>, resolved by
    Airflow's own secrets backends); the keys never appear in the store's repr."""
    from vigil.airflow.storage_conn import storage_options

    monkeypatch.setenv("AIRFLOW_CONN_VIGIL_TEST_STORE", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "hunter2-secret",
        "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}}))
    monkeypatch.setenv("VIGIL_STORAGE_CONN_ID", "vigil_test_store")
    opts = storage_options()
    assert opts == {"key": "testing", "secret": "hunter2-secret",
                    "client_kwargs": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}}
    store = ObjectStore(f"s3://{BUCKET}/conn", {**opts, "skip_instance_cache": True})
    f = tmp_path / "x.txt"
    f.write_text("x")
    assert store.exists(store.upload(f, "x.txt"))
    assert "hunter2" not in repr(store)
    monkeypatch.setenv("VIGIL_STORAGE_CONN_ID", "no_such_conn")
    from vigil.settings import SettingsError

    with pytest.raises(SettingsError, match="no_such_conn.*AIRFLOW_CONN_NO_SUCH_CONN"):
        storage_options()


def test_models_verify_reads_an_s3_artifact_through_the_store(s3_store, registry, tmp_path):
    """The registry keeps the URL; verify downloads afresh (no cache) and re-hashes."""
    out, digest = stage_output(tmp_path / "a")
    url = s3_store.upload(out, "artifacts/verify/out") + "/model"
    registry.register_version(name="s3-model", family="llm", artifact_uri=url, producer_key="test:s3", sha256=digest)
    result = registry.verify_hashes("s3-model:1", store=s3_store)
    assert result["ok"] and result["artifact_uri"].startswith("s3://")
    s3_store.fs.pipe_file(s3_store._path(url + "/config.json"), b'{"layers": 40}')
    result = registry.verify_hashes("s3-model:1", store=s3_store)
    assert not result["ok"] and "does not match the registered" in result["problem"]
