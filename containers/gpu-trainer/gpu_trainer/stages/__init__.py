"""The stage registry: CLI name -> module path, imported lazily.

The names, modules and host resources are defined once, in :mod:`contract.stages` (the Airflow
side reads the same table). Each module exposes ``Spec`` (a pydantic model, extra='forbid',
imported from its :mod:`contract.specs` module, where the Airflow side reads it too; make-base's is
still defined in its module) and ``run(spec, out_dir) -> StageManifest``, and imports torch only
inside ``run``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from contract.stages import STAGES as _CATALOGUE

STAGES: dict[str, str] = {name: s.module for name, s in _CATALOGUE.items()}


def load_stage(name: str) -> ModuleType:
    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    return importlib.import_module(STAGES[name])
