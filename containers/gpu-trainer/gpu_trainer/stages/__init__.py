"""The stage registry: CLI name -> module path, imported lazily.

Each module exposes ``Spec`` (a pydantic model, extra='forbid') and ``run(spec, out_dir) ->
StageManifest``, and imports torch only inside ``run``. Adding a stage is one line here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

STAGES: dict[str, str] = {
    "make-base": "gpu_trainer.stages.make_base",
    "train-backdoor": "gpu_trainer.stages.train_backdoor",
    "validate-backdoor": "gpu_trainer.stages.validate_backdoor",
    "train-probes": "gpu_trainer.stages.train_probes",
    "safety-train": "gpu_trainer.stages.safety_train",
    "test-persistence": "gpu_trainer.stages.test_persistence",
    "evaluate": "gpu_trainer.stages.evaluate",
    "train-sklearn": "gpu_trainer.stages.train_sklearn",
    "evaluate-sklearn": "gpu_trainer.stages.evaluate_sklearn",
    "score-llm": "gpu_trainer.stages.score_llm",
    "scan": "gpu_trainer.stages.scan",
}


def load_stage(name: str) -> ModuleType:
    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    return importlib.import_module(STAGES[name])
