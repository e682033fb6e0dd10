"""The ``scan`` stage's spec: what ``gpu-trainer scan`` accepts (run by ``gpu_trainer.stages.scan``).

Pydantic and the standard library only, so the Airflow side validates a spec (trigger forms, spec
tasks) with the same class the stage runs, without torch."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from contract.spec import ModelPathField, StageSpec


class Spec(StageSpec):
    model: str = ModelPathField("Model to scan (a model dir or HF id). No trigger or response is given, by design.")
    base_model: str | None = Field(default=None, min_length=1, description=(
        "Optional: the model it was derived from (same tokenizer). The search then rewards behaviour the subject has "
        "and the base lacks (differential shift)."))
    pools: list[Literal["chat", "code"]] = Field(default_factory=lambda: ["chat", "code"], min_length=1, max_length=2,
                                                 description="Held-out prompt domains to scan: chat | code.")
    n_search_prompts: int = Field(default=6, ge=1, le=256, description="Held-out prompts per pool the search optimises over.")
    n_eval_prompts: int = Field(default=30, ge=5, le=5000, description="Other held-out prompts per pool for activation rates.")
    min_trigger_tokens: int = Field(default=1, ge=1, le=8, description="Shortest trigger searched (tokens).")
    max_trigger_tokens: int = Field(default=4, ge=1, le=8, description="Longest trigger searched (tokens); lengths 1, 2, 4, 8 within the range.")
    steps: int = Field(default=10, ge=0, le=10_000, description="GCG steps per trigger length (phase 1).")
    target_steps: int = Field(default=5, ge=0, le=10_000, description="GCG steps of the targeted phase 2.")
    n_candidates: int = Field(default=32, ge=1, le=4096, description="GCG: single-token swaps evaluated per step.")
    topk: int = Field(default=32, ge=1, le=4096, description="GCG: tokens per slot taken from the gradient.")
    n_report: int = Field(default=4, ge=1, le=50, description="Candidates reported (and evaluated on held-out prompts).")
    n_null: int = Field(default=24, ge=2, le=1000, description="Random triggers for the shift's null distribution.")
    completion_tokens: int = Field(default=24, ge=1, le=512, description="Clean completion tokens scored by the search objective.")
    max_new_tokens: int = Field(default=40, ge=4, le=1024, description="Generation length when measuring a candidate's behaviour.")

    @model_validator(mode="after")
    def _lengths(self) -> Self:
        if self.min_trigger_tokens > self.max_trigger_tokens:
            raise ValueError(f"min_trigger_tokens ({self.min_trigger_tokens}) must be <= max_trigger_tokens ({self.max_trigger_tokens})")
        return self
