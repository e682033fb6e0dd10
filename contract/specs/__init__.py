"""The stage spec schemas: one module per stage, ``contract.specs.<stage module>``, each with ``Spec``.

``gpu-trainer <stage>`` validates its spec with this class (``gpu_trainer.stages.<module>.Spec`` is
the same object, imported from here), and so do the Airflow side's trigger forms and spec tasks
(``vigil.lifecycle.specs.validate_spec``, the DAG files' form fields), without importing torch or
the trainer. Look a stage's class up by its CLI name with :func:`spec_for`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from contract.stages import stage_info

if TYPE_CHECKING:
    from contract.spec import StageSpec

def spec_module(stage: str) -> str:
    """The module that defines ``stage``'s spec, e.g. ``contract.specs.train_backdoor``."""
    return "contract.specs." + stage_info(stage).name.replace("-", "_")


def spec_for(stage: str) -> type[StageSpec]:
    """The pydantic spec class of ``stage`` (its gpu-trainer CLI name, e.g. ``"train-backdoor"``).

    A KeyError naming the known stages for an unknown name."""
    stage_info(stage)  # KeyError naming the stages
    return importlib.import_module(spec_module(stage)).Spec
