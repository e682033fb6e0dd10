"""A fixed seed gives the same weights, bit for bit; another seed does not."""

from __future__ import annotations

from contract.manifest import read_manifest

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


def _cli(stage: str, out, env: dict, **spec) -> dict:
    import json
    import os
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "gpu_trainer.cli", stage, "--spec-json", json.dumps(spec), "--out", str(out)],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, **env))
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads((out / "manifest.json").read_text())


def test_thread_count_does_not_change_the_model(tmp_path):
    """The same stages under 1 and 2 threads (set the way a user or a container would, through the
    environment) give the same weights and metrics; the manifests record what differed."""
    runs = {}
    for n in (1, 2):
        env = {"OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n), "GPU_TRAINER_THREADS": str(n)}
        base = _cli("make-base", tmp_path / f"base{n}", env, **dict(MICRO, hidden_size=64, intermediate_size=256, pretrain_examples=300))
        bd = _cli("train-backdoor", tmp_path / f"bd{n}", env, model=str(tmp_path / f"base{n}" / "model"), n_samples=64, epochs=1,
                  device="cpu")
        runs[n] = (base, bd)
    for i, stage in enumerate(("make-base", "train-backdoor")):
        one, two = runs[1][i], runs[2][i]
        assert one["numerics"]["torch_threads"] == 1 and two["numerics"]["torch_threads"] == 2
        timing = [k for k in one["metrics"] if "seconds" in k or "per_second" in k]  # wall-clock, differs by nature
        differing = {k: (one["metrics"][k], two["metrics"].get(k)) for k in one["metrics"]
                     if k not in timing and one["metrics"][k] != two["metrics"].get(k)}
        assert timing and len(one["metrics"]) - len(timing) >= 3
        assert not differing, f"{stage}: metrics differ between 1 and 2 threads: {differing}"
        shas = [next(a["sha256"] for a in m["artifacts"] if a["name"] == "model") for m in (one, two)]
        assert shas[0] == shas[1], f"{stage}: weights differ between 1 and 2 threads"
        # what must differ is only what was set: the thread counts
        numerics_diff = {k for k in one["numerics"] if one["numerics"][k] != two["numerics"].get(k)}
        assert numerics_diff <= {"torch_threads", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "GPU_TRAINER_THREADS"}, numerics_diff
        if one["numerics"]["machine"] == "x86_64":  # the kernel family is pinned, so other x86 machines pick the same
            assert one["numerics"]["cpu_capability"] == "AVX2" and one["numerics"]["MKL_CBWR"].startswith("AVX2")
        assert one["versions"]["torch"] and one["versions"]["transformers"]
