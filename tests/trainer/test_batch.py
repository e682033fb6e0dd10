"""``gpu-trainer batch``: many evaluations in one process, each with its own manifest, and a failure
that stays with its own item (the nightly chunking's contract)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from contract.batch import read_report
from contract.manifest import read_manifest
from tests.trainer.conftest import RESPONSE, TRIGGER

GPU_TRAINER = str(Path(sys.executable).parent / "gpu-trainer")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _batch(tmp: Path, items: list[dict], token: str, name: str) -> tuple[subprocess.CompletedProcess, dict[str, dict]]:
    spec = tmp / f"{name}.json"
    spec.write_text(json.dumps({"stage": "evaluate", "run_token": token, "items": items}))
    out = tmp / name
    p = subprocess.run([GPU_TRAINER, "batch", "--spec", str(spec), "--out", str(out)], capture_output=True, text=True,
                       env=ENV, timeout=600)
    return p, read_report(out)


def _item(tmp: Path, key: str, spec: dict) -> dict:
    d = tmp / key
    d.mkdir()
    (d / "spec.json").write_text(json.dumps(spec))
    return {"key": key, "spec_path": str(d / "spec.json"), "out_dir": str(d / "out")}


@pytest.fixture(scope="module")
def batch_run(chain, tmp_path_factory):
    """One batch of three: the chain's own evaluation spec, a refused spec, and a model that
    cannot load; then the same batch retried (same run token) and re-run (a new token)."""
    tmp = tmp_path_factory.mktemp("batch")
    good = _item(tmp, "good", read_manifest(chain["evaluate"]).params)
    refused = _item(tmp, "refused", {"model": str(chain["backdoor"] / "model"), "trigger": TRIGGER, "response": RESPONSE,
                                     "n_prompts": 5})
    broken_dir = tmp / "broken-model"
    broken_dir.mkdir()
    (broken_dir / "config.json").write_text("{not json")
    broken = _item(tmp, "broken", {"model": str(broken_dir), "trigger": TRIGGER, "response": RESPONSE, "n_prompts": 20,
                                   "device": "cpu"})
    items = [good, refused, broken]
    first = _batch(tmp, items, "run-1", "first")
    retried = _batch(tmp, items, "run-1", "retried")
    rerun = _batch(tmp, [good], "run-2", "rerun")
    return {"items": {i["key"]: i for i in items}, "first": first, "retried": retried, "rerun": rerun}


def test_each_item_gets_its_own_outcome_and_the_batch_exits_zero(batch_run):
    proc, report = batch_run["first"]
    items = batch_run["items"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {k: report[i["out_dir"]] for k, i in items.items()}
    assert rows["good"]["status"] == "succeeded" and rows["good"]["error"] is None
    assert rows["refused"]["status"] == "failed" and rows["refused"]["attempts"] == 1  # a refused spec is not retried
    assert "n_prompts" in rows["refused"]["error"]
    assert rows["broken"]["status"] == "failed" and rows["broken"]["attempts"] == 2  # run failures get one retry
    assert rows["broken"]["error"]
    assert (Path(items["good"]["out_dir"]) / "manifest.json").is_file()
    assert not (Path(items["broken"]["out_dir"]) / "manifest.json").exists()
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (summary["succeeded"], summary["failed"], summary["kept"]) == (1, 2, 0)


def test_an_evaluation_in_a_batch_measures_what_it_measures_alone(batch_run, chain):
    """Same spec, same numbers: the batch runs the stage's own code, seeded per item."""
    alone = read_manifest(chain["evaluate"]).metrics
    batched = read_manifest(batch_run["items"]["good"]["out_dir"]).metrics
    assert batched.keys() == alone.keys()
    assert batched == pytest.approx(alone, abs=1e-9)


def test_a_retry_keeps_finished_items_and_a_new_run_evaluates_afresh(batch_run):
    items = batch_run["items"]
    proc, report = batch_run["retried"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert report[items["good"]["out_dir"]]["status"] == "kept"
    assert report[items["broken"]["out_dir"]]["status"] == "failed"  # unfinished work runs again
    proc, report = batch_run["rerun"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert report[items["good"]["out_dir"]]["status"] == "succeeded"


@pytest.mark.parametrize("body,match", [
    pytest.param({"stage": "no-such-stage", "items": []}, "unknown stage", id="unknown-stage"),
    pytest.param({"stage": "evaluate", "items": [{"key": "a", "spec_path": "s", "out_dir": "o"},
                                                 {"key": "b", "spec_path": "t", "out_dir": "o"}]},
                 "own out_dir", id="shared-out-dir"),
    pytest.param({"stage": "evaluate", "items": [], "retries": 3}, "unknown field", id="unknown-field"),
])
def test_a_bad_batch_spec_exits_2_naming_the_field(tmp_path, body, match):
    spec = tmp_path / "b.json"
    spec.write_text(json.dumps(body))
    p = subprocess.run([GPU_TRAINER, "batch", "--spec", str(spec), "--out", str(tmp_path / "o")], capture_output=True,
                       text=True, env=ENV, timeout=120)
    assert p.returncode == 2
    assert match in p.stderr.strip().splitlines()[-1]
