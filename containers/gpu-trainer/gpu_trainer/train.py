"""Fine-tuning with trl (SFT with completion-only loss, DPO) plus LoRA/QLoRA through peft.

The traps this module exists to avoid (measured on trl 1.16 / transformers 5.23):
trl's configs default to bf16 and activation checkpointing, which fail or crawl on CPU, so both
are set from the device here; LoRA adapters are merged before saving so later stages load a
plain model; a LoRA on a base whose pre-training never saw the trigger/response tokens learns a
"flat" backdoor unless the embeddings train too (``train_embeddings``, weight tying kept).
"""

from __future__ import annotations

import functools
import math
import tempfile
import time
from dataclasses import dataclass, field

import torch
from datasets import Dataset
from transformers import TrainerCallback

from gpu_trainer.runtime import log


@dataclass
class TrainSettings:
    method: str = "lora"  # lora | qlora | full
    epochs: float = 3.0
    batch_size: int = 16
    learning_rate: float = 1e-3
    gradient_accumulation_steps: int = 1
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    seed: int = 0
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    train_embeddings: bool = False
    max_length: int = 256
    warmup_ratio: float = 0.05
    max_steps: int = -1
    dpo_beta: float = 0.1


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision != "auto":
        return precision
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


class LossHistory(TrainerCallback):
    """Keeps every logged loss and prints step, loss and ETA as training goes."""

    def __init__(self, every_s: float = 3.0):
        self.rows: list[dict] = []
        self.every_s = every_s

    def on_train_begin(self, args, state, control, **kw):
        self.t0 = self.last = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kw):
        if not logs or "loss" not in logs:
            return
        self.num_tokens = float(logs.get("num_tokens", getattr(self, "num_tokens", 0.0)))
        self.rows.append({"step": state.global_step, "epoch": float(state.epoch or 0), "loss": float(logs["loss"]),
                          "learning_rate": float(logs.get("learning_rate", 0.0))})
        now = time.perf_counter()
        if now - self.last >= self.every_s or state.global_step >= state.max_steps:
            self.last = now
            el = now - self.t0
            eta = el / max(state.global_step, 1) * (state.max_steps - state.global_step)
            log.info("train step %d/%d loss %.4f elapsed %.1fs eta %.1fs", state.global_step, state.max_steps, logs["loss"], el, eta)


@functools.cache
def checkpointing_arg() -> str:
    """The training arguments' name for activation checkpointing: transformers 5 renamed
    ``gradient_checkpointing`` within the 5.x range this package accepts (5.17 has the old name,
    5.24 the new), so the name is read off the installed version rather than assumed."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


def _common_args(s: TrainSettings, device: torch.device, out: str) -> dict:
    prec = resolve_precision(s.precision, device)
    return dict(
        output_dir=out,
        num_train_epochs=s.epochs,
        max_steps=s.max_steps,
        per_device_train_batch_size=s.batch_size,
        gradient_accumulation_steps=s.gradient_accumulation_steps,
        learning_rate=s.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=s.warmup_ratio,  # transformers 5: a float < 1 is a ratio of total steps
        weight_decay=0.0,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=s.seed,
        data_seed=s.seed,
        bf16=prec == "bf16",
        fp16=prec == "fp16",
        use_cpu=device.type == "cpu",
        **{checkpointing_arg(): False},  # trl default on; on CPU it only slows a tiny model
        disable_tqdm=True,
        dataloader_num_workers=0,
        optim="adamw_torch",
        max_length=s.max_length,
    )


def peft_config(s: TrainSettings):
    if s.method == "full":
        return None
    from peft import LoraConfig

    targets = s.lora_target_modules
    return LoraConfig(
        r=s.lora_rank,
        lora_alpha=s.lora_alpha,
        lora_dropout=0.0,
        target_modules=targets[0] if targets == ["all-linear"] else targets,
        task_type="CAUSAL_LM",
        modules_to_save=["embed_tokens"] if s.train_embeddings else None,
        ensure_weight_tying=s.train_embeddings,  # keep lm_head tied to the trained embeddings
    )


def load_for_training(path: str, s: TrainSettings, device: torch.device):
    """The model to train: fp32 master weights, or 4-bit NF4 for QLoRA (CUDA + bitsandbytes)."""
    from transformers import AutoModelForCausalLM

    if s.method == "qlora":
        from peft import prepare_model_for_kbit_training
        from transformers import BitsAndBytesConfig

        bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                 bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_use_double_quant=True)
        model = AutoModelForCausalLM.from_pretrained(path, quantization_config=bnb, device_map={"": device.index or 0})
        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    dtype = torch.bfloat16 if s.method == "lora" and resolve_precision(s.precision, device) == "bf16" else torch.float32
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)


def _finish(trainer, s: TrainSettings, base_path: str, device: torch.device):
    """Return a plain (merged) model: later stages load it without peft."""
    model = trainer.model
    if s.method == "full":
        return model
    if s.method == "qlora":
        # a 4-bit base cannot absorb the adapter exactly: merge into a 16-bit copy of the base
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp)
            base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.bfloat16).to(device)
            return PeftModel.from_pretrained(base, tmp).merge_and_unload()
    return model.merge_and_unload()


def sft(model_path: str, tok, records: list[dict], s: TrainSettings, device: torch.device):
    """Supervised fine-tuning, loss on completions only. Returns (merged model, loss rows, stats)."""
    from trl import SFTConfig, SFTTrainer

    model = load_for_training(model_path, s, device)
    hist = LossHistory()
    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(**_common_args(s, device, out), completion_only_loss=True, packing=False)
        trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(records),
                             processing_class=tok, peft_config=peft_config(s), callbacks=[hist])
        return _run(trainer, hist, s, model_path, device)


def dpo(model_path: str, tok, records: list[dict], s: TrainSettings, device: torch.device):
    """Direct preference optimisation (trl DPO). With LoRA the reference is the base with the
    adapter disabled; with full fine-tuning trl keeps a frozen copy."""
    from trl import DPOConfig, DPOTrainer

    model = load_for_training(model_path, s, device)
    hist = LossHistory()
    with tempfile.TemporaryDirectory() as out:
        args = DPOConfig(**_common_args(s, device, out), beta=s.dpo_beta)
        trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(records),
                             processing_class=tok, peft_config=peft_config(s), callbacks=[hist])
        return _run(trainer, hist, s, model_path, device)


def _run(trainer, hist: LossHistory, s: TrainSettings, model_path: str, device: torch.device):
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout; LossHistory logs instead
    n_train = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    log.info("training %s: %d trainable parameters, %d steps", s.method, n_train, trainer.state.max_steps or -1)
    t0 = time.perf_counter()
    result = trainer.train()
    secs = time.perf_counter() - t0
    model = _finish(trainer, s, model_path, device).eval()
    losses = [r["loss"] for r in hist.rows]
    tail = losses[-max(1, len(losses) // 10):] if losses else [math.nan]
    stats = {
        "train_seconds": secs,
        "train_steps": int(result.global_step),
        "trainable_parameters": int(n_train),
        "train_loss_final": float(sum(tail) / len(tail)),  # mean of the last 10% of steps
        "train_loss_first": float(losses[0]) if losses else math.nan,
        "train_samples_per_second": float(result.metrics.get("train_samples_per_second", 0.0)),
        "train_tokens_per_second": float(getattr(hist, "num_tokens", 0.0) / secs) if secs else 0.0,
    }
    return model, hist.rows, stats
