"""make-base: the base model version. ``base_model="tiny"`` builds a tiny Llama locally (BPE
tokenizer trained on the generated corpus, random init, short clean pre-training); anything else
is a hub id or local path loaded with the same Auto classes and re-saved as a model version."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from contract.base_sizes import APPROX_PARAMETERS, BASE_SIZES, SHAPE_FIELDS, BaseSize
from contract.spec import ResponseField, StageSpec, TriggerField

STAGE = "make-base"


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
