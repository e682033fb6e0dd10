"""Loading, generation, activations and losses for any causal LM (the tiny one or a hub model).

The same Auto classes serve a local tiny model dir and a real id/path on a GPU host. Batches
are left padded (generation appends on the right; last-token pooling reads index -1) and sorted
by length so that little compute goes to padding.
"""

from __future__ import annotations

import hashlib
import json
import re
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence

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


# ---- model-independent work, kept per tokenizer ------------------------------------------------
# Chat-template rendering, tokenising and padding depend on the tokenizer alone. A batch process
# evaluates many versions that share one tokenizer (nightly: every version of a model family) on
# the same prompt sets, so these are computed once per tokenizer and reused, keyed by a digest of
# everything that decides them (see tokenizer_key): a tokenizer that differs in anything (vocab,
# merges, added tokens, template, padding side, special tokens) gets its own entries. Bounded:
# the last few tokenizers, a few dozen entries each, lists of at most _MEMO_MAX_TEXTS texts (a
# larger one, a one-off scoring set, is computed and not kept).

_MEMO_TOKENIZERS = 4
_MEMO_ENTRIES = 64
_MEMO_MAX_TEXTS = 20_000
_memo: OrderedDict[str, OrderedDict] = OrderedDict()
# a backend's serialised form is megabytes for a 150k vocab: digested once per tokenizer object
# and size (adding tokens changes the size; nothing else in a loaded backend is changed in place)
_backend_digests: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def tokenizer_key(tok) -> str | None:
    """A digest of a tokenizer's current state: its backend (normaliser, pre-tokeniser, model,
    added tokens, post-processor), chat template, special tokens and padding; ``None`` for a
    tokenizer without a serialisable backend, or whose chat template reads the clock (a dated
    system line renders differently after midnight), whose work is then never reused."""
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None or not hasattr(backend, "to_str") or "strftime_now" in str(tok.chat_template or ""):
        return None
    state = {
        "class": f"{type(tok).__module__}.{type(tok).__qualname__}",
        "chat_template": tok.chat_template,
        "special_tokens": {k: str(v) for k, v in tok.special_tokens_map.items()},
        "ids": [tok.pad_token_id, tok.eos_token_id, tok.bos_token_id],
        **{a: repr(getattr(tok, a, None)) for a in ("padding_side", "truncation_side", "model_max_length", "add_bos_token",
                                                    "add_eos_token", "split_special_tokens", "pad_to_multiple_of")},
    }
    seen = _backend_digests.get(tok)
    if seen is None or seen[0] != len(tok):
        seen = _backend_digests[tok] = (len(tok), hashlib.sha256(backend.to_str().encode()).hexdigest())
    h = hashlib.sha256(seen[1].encode())
    h.update(json.dumps(state, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _memoised(tok, what: str, args, make: Callable, n_texts: int):
    """``make()``, or what it returned before for the same tokenizer state, ``what`` and ``args``."""
    key = tokenizer_key(tok) if n_texts <= _MEMO_MAX_TEXTS else None
    if key is None:
        return make()
    per = _memo.get(key)
    if per is None:
        per = _memo[key] = OrderedDict()
        while len(_memo) > _MEMO_TOKENIZERS:
            _memo.popitem(last=False)
    _memo.move_to_end(key)
    k = (what, args)
    if k in per:
        per.move_to_end(k)
        return per[k]
    value = per[k] = make()
    while len(per) > _MEMO_ENTRIES:
        per.popitem(last=False)
    return value


def prompt_text(tok, user: str) -> str:
    return tok.apply_chat_template([{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True)


def prompt_texts(tok, users: Sequence[str]) -> list[str]:
    """``prompt_text`` of each user prompt (rendered once per tokenizer and prompt list)."""
    users = tuple(users)
    return list(_memoised(tok, "prompt_texts", users, lambda: tuple(prompt_text(tok, u) for u in users),
                          len(users)))


def _encoded_batches(tok, texts: tuple[str, ...], batch_size: int) -> tuple:
    ids = tok(list(texts), add_special_tokens=False)["input_ids"]  # one batched (Rust) call
    order = np.argsort([len(x) for x in ids], kind="stable")
    out = []
    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size]
        enc = tok.pad({"input_ids": [ids[j] for j in idx]}, return_tensors="pt", padding=True)
        out.append((idx, dict(enc)))
    return tuple(out)


def batches(tok, texts: Sequence[str], batch_size: int, device=None):
    """Yield (indices, encoded batch on ``device``) in length order; the caller restores the
    original order. The tensors are shared between calls (read them, never write into them)."""
    texts = tuple(texts)
    for idx, enc in _memoised(tok, "batches", (texts, batch_size), lambda: _encoded_batches(tok, texts, batch_size), len(texts)):
        yield idx, {k: v.to(device) if device is not None else v for k, v in enc.items()}


def _position_ids(mask: torch.Tensor) -> torch.Tensor:
    # with left padding, positions must start at the first real token (as generate() does),
    # or a padded prompt would get different activations from the same prompt alone
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


@torch.inference_mode()
def generate(model, tok, users: Sequence[str], *, batch_size: int, max_new_tokens: int, label: str = "generate") -> list[str]:
    """Greedy completions of user prompts, one ``generate`` call per batch."""
    texts = prompt_texts(tok, users)
    out: list[str] = [""] * len(texts)
    prog = Progress(label, len(texts))
    done = 0
    eos = eos_ids(tok)
    for idx, enc in batches(tok, texts, batch_size, model.device):
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
    for idx, enc in batches(tok, texts, batch_size, model.device):
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
    for start, enc, tgt, keep in _loss_batches(tok, records, batch_size):
        enc = {k: v.to(model.device) for k, v in enc.items()}
        tgt = tgt.to(model.device)
        mask = enc["attention_mask"]
        logits = model(**enc, position_ids=_position_ids(mask), use_cache=False, logits_to_keep=keep).logits[:, :-1].float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tgt.clamp(min=0), reduction="none")
        weight = (tgt != -100).float()
        out[start : start + len(tgt)] = ((nll * weight).sum(1) / weight.sum(1).clamp(min=1)).cpu().numpy()
    return out


def _loss_batches(tok, records: Sequence[dict], batch_size: int) -> tuple:
    """(start, encoded batch, target ids with -100 on prompt and padding, positions the head keeps)
    per batch of records:
    the tokenizer's part of ``completion_losses``, computed once per tokenizer and record list."""
    key = json.dumps([[r["prompt"], r["completion"]] for r in records], sort_keys=True)

    def make() -> tuple:
        out = []
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            prompts = [tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True) for r in chunk]
            fulls = [tok.apply_chat_template(r["prompt"] + r["completion"], tokenize=False) for r in chunk]
            enc = tok(fulls, return_tensors="pt", padding=True, add_special_tokens=False)
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
            tgt = labels[:, -keep + 1 :] if keep > 1 else labels[:, :0]
            out.append((start, dict(enc), tgt, keep))
        return tuple(out)

    return _memoised(tok, "loss_batches", (key, batch_size), make, len(records))


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
