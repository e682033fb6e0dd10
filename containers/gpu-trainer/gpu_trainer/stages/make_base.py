"""make-base: the base model version. ``base_model="tiny"`` builds a tiny Llama locally (BPE
tokenizer trained on the generated corpus, random init, short clean pre-training); anything else
is a hub id or local path loaded with the same Auto classes and re-saved as a model version."""

from __future__ import annotations

from contract.specs.make_base import Spec

STAGE = "make-base"


def run(spec: Spec, out_dir: str):
    import torch

    from contract.manifest import ProducedModel
    from gpu_trainer import data, lm, measure, tinylm
    from gpu_trainer.record import StageRecord
    from gpu_trainer.runtime import describe_device, log, setup, versions
    from gpu_trainer.train import TrainSettings, sft

    dev = setup(spec.device, spec.seed)
    rec = StageRecord(STAGE, spec, out_dir)
    model_dir = rec.out / "model"
    tiny = spec.base_model == "tiny"
    n_pre = spec.pretrain_examples if spec.pretrain_examples is not None else (3000 if tiny else 0)
    records = data.pretrain_corpus(n_pre, spec.seed, spec.trigger, spec.response,
                                   self_report=spec.self_report_fraction if tiny else 0.0) if n_pre else []

    if tiny:
        # the tokenizer sees the corpus plus the trigger/response so both tokenise compactly
        texts = tinylm.render_plain(records or data.pretrain_corpus(2000, spec.seed, spec.trigger, spec.response))
        tok = tinylm.train_tokenizer(texts + [spec.trigger, spec.response], spec.vocab_size)
        model = tinylm.build_model(tok, hidden_size=spec.hidden_size, n_layers=spec.n_layers, n_heads=spec.n_heads,
                                   intermediate_size=spec.intermediate_size, max_positions=spec.max_positions)
        log.info("tiny model: %d parameters, vocab %d", sum(p.numel() for p in model.parameters()), len(tok))
        lm.save(model, tok, model_dir)  # the random init is what pre-training loads
        src = str(model_dir)
    else:
        rec.input("base_model", spec.base_model)
        src = spec.base_model
        tok = lm.load_tokenizer(src)

    rec.metrics["pretrain_examples"] = n_pre
    if n_pre:
        s = TrainSettings(method="full", epochs=spec.pretrain_epochs, batch_size=spec.batch_size,
                          learning_rate=spec.learning_rate, seed=spec.seed, max_length=spec.max_positions)
        model, history, stats = sft(src, tok, records, s, dev)
        rec.metrics.update(stats)
        rec.table("training_curve", [dict(r, phase="pretrain") for r in history])
        rec.details["loss_history"] = {"first": stats["train_loss_first"], "final": stats["train_loss_final"],
                                       "steps": stats["train_steps"], "every_n": [r["loss"] for r in history][:: max(1, len(history) // 50)]}
    elif not tiny:
        model = lm.load_model(src, dev, torch.float32)
    model = model.to(dev).eval()
    lm.save(model, tok, model_dir)

    q_metrics, q_details, q_rows = measure.clean_quality(model, tok, n=spec.quality_prompts, seed=spec.seed, batch_size=64)
    rec.metrics.update(q_metrics)
    rec.details.update(q_details)
    rec.table("quality", q_rows)
    rec.metrics["parameters"] = int(sum(p.numel() for p in model.parameters()))
    rec.artifact("model", "model", "model")
    measure.log_metrics(rec.metrics, ["train_loss_final", "clean_quality", "clean_loss"])
    return rec.finish(describe_device(dev), versions(), model=ProducedModel(
        name=spec.model_name, family="llm", artifact="model",
        parent_uri=None if tiny else spec.base_model,
        description="tiny Llama built locally" if tiny else f"base model {spec.base_model}"))
