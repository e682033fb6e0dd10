"""The stage spec schemas: one module per stage, ``contract.specs.<stage module>``, each with ``Spec``.

``gpu-trainer <stage>`` validates its spec with this class (``gpu_trainer.stages.<module>.Spec`` is
the same object, imported from here), and so do the Airflow side's trigger forms and spec tasks
(``vigil.lifecycle.specs.validate_spec``, the DAG files' form fields), without importing torch or
the trainer. Look a stage's class up by its CLI name with :func:`spec_for`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from contract.stages import STAGES, stage_info

if TYPE_CHECKING:
    from contract.spec import StageSpec

# Stages whose Spec still lives beside the stage's code (gpu_trainer.stages.<module>), not yet
# here: the Airflow side reaches them through gpu_trainer.stages.load_stage (see
# vigil.lifecycle.specs.spec_class). make-base's moves in once its base sizes have landed.
NOT_IN_CONTRACT: frozenset[str] = frozenset({"make-base"})


def spec_module(stage: str) -> str:
    """The module that defines ``stage``'s spec, e.g. ``contract.specs.train_backdoor``."""
    return "contract.specs." + stage_info(stage).name.replace("-", "_")


def spec_for(stage: str) -> type[StageSpec]:
    """The pydantic spec class of ``stage`` (its gpu-trainer CLI name, e.g. ``"train-backdoor"``).

    A KeyError naming the known stages for an unknown name; a LookupError for a stage whose
    spec is not in the contract yet (:data:`NOT_IN_CONTRACT`)."""
    stage_info(stage)  # KeyError naming the stages
    if stage in NOT_IN_CONTRACT:
        raise LookupError(f"stage {stage!r}'s spec is not in contract.specs yet; it is gpu_trainer.stages.load_stage({stage!r}).Spec")
    return importlib.import_module(spec_module(stage)).Spec


def contract_stages() -> list[str]:
    """The stages whose spec the contract defines (every stage but :data:`NOT_IN_CONTRACT`)."""
    return [s for s in STAGES if s not in NOT_IN_CONTRACT]
