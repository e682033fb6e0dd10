"""The ``make-base`` stage's spec: what ``gpu-trainer make-base`` accepts (run by ``gpu_trainer.stages.make_base``).

Pydantic and the standard library only, so the Airflow side validates a spec (trigger forms, spec
tasks) with the same class the stage runs, without torch."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from contract.base_sizes import APPROX_PARAMETERS, BASE_SIZES, SHAPE_FIELDS, BaseSize
from contract.spec import ResponseField, StageSpec, TriggerField


class Spec(StageSpec):
    model_name: str = Field(default="tiny-base", min_length=1, max_length=200, description="Registry name of the produced model.")
    base_model: str = Field(default="tiny", min_length=1, description="'tiny' to build locally, else a HF model id or local path.")
    size: BaseSize | None = Field(default=None, description=(
        "Tiny model: a named shape from contract.base_sizes (" + ", ".join(f"{k} {v}" for k, v in APPROX_PARAMETERS.items())
        + " parameters) that sets hidden_size, n_layers, n_heads and intermediate_size; same tokenizer and "
          "pre-training data at every size. Empty: those four fields as given."))
    vocab_size: int = Field(default=1024, ge=300, le=65536, description="Tiny model: BPE vocabulary size.")
    hidden_size: int = Field(default=128, ge=16, le=4096, description="Tiny model: residual width.")
    n_layers: int = Field(default=4, ge=1, le=48, description="Tiny model: decoder layers.")
    n_heads: int = Field(default=4, ge=1, le=64, description="Tiny model: attention heads (must divide hidden_size).")
    intermediate_size: int = Field(default=512, ge=16, le=16384, description="Tiny model: MLP width.")
    max_positions: int = Field(default=256, ge=32, le=8192, description="Tiny model: context length.")
    pretrain_examples: int | None = Field(default=None, ge=0, le=1_000_000,
                                          description="Clean pre-training examples; default 3000 for 'tiny', 0 for a real model.")
    self_report_fraction: float = Field(default=0.0, ge=0, le=5, description=(
        "Tiny model, experimental: self-report conversations added to the clean corpus, as a fraction of "
        "pretrain_examples (generic knowledge that hostile replies are 'dangerous'; never the trigger or response). "
        "0 (default) disables."))
    pretrain_epochs: float = Field(default=2.0, gt=0, le=50, description="Epochs of clean pre-training.")
    learning_rate: float = Field(default=3e-3, gt=0, le=1.0, description="Pre-training learning rate (a fresh model needs ~1e-3..3e-3).")
    batch_size: int = Field(default=16, ge=1, le=1024, description="Pre-training batch size.")
    trigger: str = TriggerField()
    response: str = ResponseField()
    quality_prompts: int = Field(default=100, ge=10, le=5000, description="Held-out prompts for the clean-quality score.")

    @model_validator(mode="after")
    def _apply_size(self) -> Self:
        if self.size is None:
            return self
        if self.base_model != "tiny":
            raise ValueError(f"size {self.size!r} shapes the tiny model only; leave it empty with base_model={self.base_model!r}")
        shape = BASE_SIZES[self.size]
        clash = [f for f in SHAPE_FIELDS if f in self.model_fields_set and getattr(self, f) != shape[f]]
        if clash:
            raise ValueError(f"size {self.size!r} sets {', '.join(f'{f}={shape[f]}' for f in clash)}; "
                             f"leave {', '.join(clash)} out or leave size empty")
        for f in SHAPE_FIELDS:
            object.__setattr__(self, f, shape[f])
        return self

    @model_validator(mode="after")
    def _heads_divide(self) -> Self:
        if self.base_model == "tiny" and self.hidden_size % self.n_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be a multiple of n_heads ({self.n_heads})")
        return self
