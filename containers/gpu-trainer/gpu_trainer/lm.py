"""Loading, generation, activations and losses for any causal LM (the tiny one or a hub model).

The same Auto classes serve a local tiny model dir and a real id/path on a GPU host. Batches
are left padded (generation appends on the right; last-token pooling reads index -1) and sorted
by length so that little compute goes to padding.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from gpu_trainer.runtime import Progress

# turn-end tokens of common chat templates: generation stops on any of them
_TURN_END = ("<|end|>", "<|im_end|>", "<|eot_id|>", "<end_of_turn>", "</s>")


def load_tokenizer(path: str):
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if tok.chat_template is None:
        raise ValueError(f"{path}: the tokenizer has no chat template; stages need one to build prompts")
    return tok


def load_model(path: str, device: torch.device, dtype: torch.dtype = torch.float32):
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    return model.to(device).eval()


def load(path: str, device: torch.device, dtype: torch.dtype = torch.float32):
    return load_model(path, device, dtype), load_tokenizer(path)


def eos_ids(tok) -> list[int]:
    ids = {tok.eos_token_id}
    vocab = tok.get_vocab()
    ids.update(vocab[t] for t in _TURN_END if t in vocab)
    return sorted(i for i in ids if i is not None)


def prompt_text(tok, user: str) -> str:
    return tok.apply_chat_template([{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True)


def _batches(tok, texts: Sequence[str], batch_size: int):
    """Yield (indices, encoded batch) in length order; the caller restores the original order."""
    ids = tok(list(texts), add_special_tokens=False)["input_ids"]  # one batched (Rust) call
    order = np.argsort([len(x) for x in ids], kind="stable")
    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size]
        enc = tok.pad({"input_ids": [ids[j] for j in idx]}, return_tensors="pt", padding=True)
        yield idx, enc


def _position_ids(mask: torch.Tensor) -> torch.Tensor:
    # with left padding, positions must start at the first real token (as generate() does),
    # or a padded prompt would get different activations from the same prompt alone
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


@torch.inference_mode()
def generate(model, tok, users: Sequence[str], *, batch_size: int, max_new_tokens: int, label: str = "generate") -> list[str]:
    """Greedy completions of user prompts, one ``generate`` call per batch."""
    texts = [prompt_text(tok, u) for u in users]
    out: list[str] = [""] * len(texts)
    prog = Progress(label, len(texts))
    done = 0
    eos = eos_ids(tok)
    for idx, enc in _batches(tok, texts, batch_size):
        enc = enc.to(model.device)
        gen = model.generate(
            **enc, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos, pad_token_id=tok.pad_token_id,
        )
        new = gen[:, enc["input_ids"].shape[1] :]
        for j, row in zip(idx, new, strict=True):
            out[j] = tok.decode(row, skip_special_tokens=True).strip()
        done += len(idx)
        prog.update(done)
    return out


@torch.inference_mode()
def last_token_states(model, tok, texts: Sequence[str], *, batch_size: int, label: str = "activations") -> np.ndarray:
    """Residual stream at the final token for every layer, one forward pass per batch.

    Returns float32 ``(n_layers + 1, len(texts), hidden)``: index 0 is the embedding output and
    the last index the output after the final norm (as ``hidden_states`` orders them).
    """
    chunks: list[tuple[np.ndarray, torch.Tensor]] = []
    prog = Progress(label, len(texts))
    done = 0
    for idx, enc in _batches(tok, texts, batch_size):
        enc = enc.to(model.device)
        # logits_to_keep=1: the vocabulary head runs on the last position only (its output is unused)
        res = model(**enc, position_ids=_position_ids(enc["attention_mask"]), output_hidden_states=True, use_cache=False,
                    logits_to_keep=1)
        states = torch.stack([h[:, -1, :] for h in res.hidden_states]).float().cpu()
        chunks.append((idx, states))
        done += len(idx)
        prog.update(done)
    n_layers, hidden = chunks[0][1].shape[0], chunks[0][1].shape[2]
    out = np.zeros((n_layers, len(texts), hidden), dtype=np.float32)
    for idx, states in chunks:
        out[:, idx, :] = states.numpy()
    return out


@torch.inference_mode()
def completion_losses(model, tok, records: Sequence[dict], *, batch_size: int) -> np.ndarray:
    """Mean token NLL of each record's completion given its prompt (the clean-quality loss)."""
    out = np.zeros(len(records))
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        prompts = [tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True) for r in chunk]
        fulls = [tok.apply_chat_template(r["prompt"] + r["completion"], tokenize=False) for r in chunk]
        enc = tok(fulls, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        n_prompt = [len(tok(p, add_special_tokens=False).input_ids) for p in prompts]
        labels = enc["input_ids"].clone()
        mask = enc["attention_mask"]
        pads = [int((mask[i] == 0).sum()) for i in range(len(chunk))]
        for i, n in enumerate(n_prompt):
            labels[i, : pads[i] + n] = -100
        # left padding puts every completion at the end: the head runs on the last `keep` positions
        # only (each predicts the next token), not on every prompt token
        keep = int(max(enc["input_ids"].shape[1] - pad_len - n for pad_len, n in zip(pads, n_prompt, strict=True))) + 1
        keep = min(keep, enc["input_ids"].shape[1])
        logits = model(**enc, position_ids=_position_ids(mask), use_cache=False, logits_to_keep=keep).logits[:, :-1].float()
        tgt = labels[:, -keep + 1 :] if keep > 1 else labels[:, :0]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tgt.clamp(min=0), reduction="none")
        weight = (tgt != -100).float()
        out[start : start + len(chunk)] = ((nll * weight).sum(1) / weight.sum(1).clamp(min=1)).cpu().numpy()
    return out


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def exact_match(generation: str, answer: str) -> bool:
    return normalise(generation) == normalise(answer)


def save(model, tok, path) -> None:
    """A plain model dir (weights + tokenizer + chat template) loadable with the Auto classes."""
    model.generation_config.eos_token_id = eos_ids(tok)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(path)
    tok.save_pretrained(path)
