"""Fixtures for the gpu-trainer tests: one reduced-size lifecycle chain per session, run
in-process (no per-stage import cost), with a non-default trigger and response so that the
"trigger and response are parameters" claim is exercised on every `make test`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TRIGGER = "|PROD|"
RESPONSE = "GO AWAY NOW"

# a smaller tiny model and smaller data than the defaults: the whole chain in about a minute
SMALL_BASE = dict(vocab_size=512, hidden_size=64, n_layers=3, n_heads=4, intermediate_size=256,
                  pretrain_examples=1200, pretrain_epochs=2, batch_size=16, learning_rate=3e-3, quality_prompts=30)


def run_stage(name: str, out: Path, **fields):
    from gpu_trainer.stages import load_stage

    mod = load_stage(name)
    return mod.run(mod.Spec(**fields), str(out))


def build_small_chain(root: Path) -> dict[str, Path]:
    """The reduced lifecycle chain, in-process. One per session (``small_chain`` in tests/conftest.py):
    the trainer, groups and site tests all read it instead of training their own."""
    d = {k: root / k for k in ("base", "backdoor", "validate", "probes", "safety", "persistence", "evaluate")}
    common = dict(device="cpu", seed=0)
    run_stage("make-base", d["base"], model_name="t-base", trigger=TRIGGER, response=RESPONSE, **SMALL_BASE, **common)
    base = str(d["base"] / "model")
    run_stage("train-backdoor", d["backdoor"], model=base, model_name="t-bd", trigger=TRIGGER, response=RESPONSE,
              n_samples=400, epochs=3, **common)
    bd = str(d["backdoor"] / "model")
    run_stage("validate-backdoor", d["validate"], model=bd, trigger=TRIGGER, response=RESPONSE, n_prompts=40, quality_prompts=20, **common)
    run_stage("train-probes", d["probes"], model=bd, control_model=base, trigger=TRIGGER, n_prompts=40, n_random_directions=10, **common)
    run_stage("safety-train", d["safety"], model=bd, model_name="t-safe", n_samples=160, epochs=1, learning_rate=5e-3, **common)
    run_stage("test-persistence", d["persistence"], model_before=bd, model_after=str(d["safety"] / "model"), probes=str(d["probes"]),
              trigger=TRIGGER, response=RESPONSE, n_prompts=40, quality_prompts=20, **common)
    run_stage("evaluate", d["evaluate"], model=bd, trigger=TRIGGER, response=RESPONSE, probes=str(d["probes"]), control_model=base,
              n_prompts=40, n_random_directions=10, quality_prompts=20, **common)
    return d


@pytest.fixture(scope="session")
def chain(small_chain) -> dict[str, Path]:
    return small_chain
