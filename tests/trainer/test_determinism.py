"""A fixed seed gives the same weights, bit for bit; another seed does not."""

from __future__ import annotations

from gpu_trainer.manifest import read_manifest

from .conftest import run_stage

MICRO = dict(vocab_size=300, hidden_size=32, n_layers=2, n_heads=2, intermediate_size=64, pretrain_examples=160,
             pretrain_epochs=1, quality_prompts=10, device="cpu")


def _weights_sha(out) -> str:
    m = read_manifest(out)
    return m.artifact("model").sha256


def test_same_seed_same_model_other_seed_differs(tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        run_stage("make-base", tmp_path / f"base_{name}", seed=seed, **MICRO)
    assert _weights_sha(tmp_path / "base_a") == _weights_sha(tmp_path / "base_b")
    assert _weights_sha(tmp_path / "base_a") != _weights_sha(tmp_path / "base_c")
    a, b = read_manifest(tmp_path / "base_a").metrics, read_manifest(tmp_path / "base_b").metrics
    assert a["train_loss_final"] == b["train_loss_final"] and a["clean_loss"] == b["clean_loss"]

    base = str(tmp_path / "base_a" / "model")
    for name in ("x", "y"):
        run_stage("train-backdoor", tmp_path / f"bd_{name}", model=base, n_samples=64, epochs=1, seed=3, device="cpu")
    assert _weights_sha(tmp_path / "bd_x") == _weights_sha(tmp_path / "bd_y")
