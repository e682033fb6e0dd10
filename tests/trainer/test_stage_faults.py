"""Real faults at the stage: SIGKILL mid-training and a full disk. Either way no manifest.json is
left (the manifest is the only thing the record task reads, written last and atomically), and a
retry into the same output directory produces a whole, consistent result."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from contract.manifest import read_manifest, sha256_path

MICRO = dict(vocab_size=300, hidden_size=32, n_layers=2, n_heads=2, intermediate_size=64, pretrain_examples=160,
             pretrain_epochs=1, quality_prompts=10, device="cpu")


def _cmd(out, **spec):
    return [sys.executable, "-m", "gpu_trainer.cli", "make-base", "--spec-json", json.dumps(spec), "--out", str(out)]


def test_sigkill_mid_training_leaves_no_manifest_and_the_retry_is_whole(tmp_path):
    out = tmp_path / "base"
    spec = dict(MICRO, pretrain_examples=3000, pretrain_epochs=3)
    p = subprocess.Popen(_cmd(out, **spec), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    for line in p.stderr:  # kill once the training loop is running (the random init is on disk by then)
        if "train " in line and "/" in line or time.monotonic() > deadline:
            break
    p.send_signal(signal.SIGKILL)
    assert p.wait(timeout=30) == -signal.SIGKILL
    assert (out / "model").is_dir(), "the kill came before the stage wrote anything: move it later"
    assert not (out / "manifest.json").exists()

    retry = subprocess.run(_cmd(out, **MICRO), capture_output=True, text=True, timeout=300)
    assert retry.returncode == 0, retry.stderr[-2000:]
    m = read_manifest(out)
    model = m.artifact("model")
    assert sha256_path(out / model.path) == model.sha256  # what the retry registered is what is on disk
    assert m.params["pretrain_examples"] == MICRO["pretrain_examples"]


def test_full_disk_fails_naming_the_path_and_records_nothing(small_tmpfs):
    out = small_tmpfs("100k") / "base"
    p = subprocess.run(_cmd(out, **MICRO), capture_output=True, text=True, timeout=300)
    last = p.stderr.strip().splitlines()[-1]
    assert p.returncode == 1
    assert f"no space left on the device holding {out}" in last and "bytes free" in last, last
    assert not (out / "manifest.json").exists()
