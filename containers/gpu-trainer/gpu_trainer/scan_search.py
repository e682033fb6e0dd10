"""Trigger inversion by greedy coordinate gradient (GCG) over one-hot token embeddings.

Written for the ``scan`` stage after Zou et al. 2023 ("Universal and Transferable Adversarial
Attacks on Aligned Language Models", the llm-attacks reference implementation): the trigger is a
sequence of ``L`` token slots; the loss is differentiated with respect to the one-hot matrix of
those slots (``one_hot @ E`` replaces their embeddings), the ``topk`` most promising tokens per
slot are read off the negative gradient, ``n_candidates`` single-slot swaps are sampled from them
and evaluated exactly in one batched forward pass, and the best swap is kept. Nothing here knows
the planted trigger or response.

Two objectives, both averaged over a batch of held-out clean prompts (the trigger slots lead the
user turn, as a deployment tag would):

* **untargeted shift** (phase 1): the summed NLL of the model's *own* clean greedy completion when
  the candidate is inserted, i.e. how much the candidate moves the model off its normal answer.
  With a base model the objective is differential, subject shift minus base shift (each on its
  own clean completions): a string that merely confuses any model of the family (a junk token, a
  copy-task cue) moves the base as much as the subject and scores nothing.
* **targeted** (phase 2): the NLL of the completions the best phase-1 candidate induced, per
  prompt (the target is the model's own greedy output under that candidate, the "target-first"
  half of BAIT-style inversion): the search then sharpens the trigger towards that behaviour.

Candidates are kept only when their text re-tokenises to the same ids (what a user could type).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from gpu_trainer import lm
from gpu_trainer.runtime import log

MARK = "\u2063SCANMARK\u2063"


@dataclass
class Layout:
    """Token ids around the user content of one chat turn, read off the tokenizer's template."""

    prefix: list[int]
    suffix: list[int]

    @classmethod
    def of(cls, tok) -> Layout:
        text = lm.prompt_text(tok, MARK)
        before, after = text.split(MARK)
        enc = lambda s: tok(s, add_special_tokens=False).input_ids if s else []  # noqa: E731
        return cls(enc(before), enc(after))


def allowed_tokens(tok) -> list[int]:
    """Token ids a trigger may use: not special, printable, non-empty, and stable under
    decode -> encode on their own."""
    special = set(tok.all_special_ids) | set(getattr(tok, "added_tokens_decoder", {}) or {})
    out = []
    for i in range(len(tok)):
        if i in special:
            continue
        s = tok.decode([i])
        if not s.strip() or not s.isprintable() or "\ufffd" in s:
            continue
        if tok(s, add_special_tokens=False).input_ids != [i]:
            continue
        out.append(i)
    return out


def round_trips(tok, ids: Sequence[int]) -> bool:
    return tok(tok.decode(list(ids)), add_special_tokens=False).input_ids == list(ids)


@dataclass
class PromptSet:
    """Clean prompts tokenised for trigger insertion, each with a completion to score (T tokens)."""

    plain: list[list[int]]  # user content alone (no trigger)
    spaced: list[list[int]]  # " " + user content (what follows an inserted trigger)
    targets: list[list[int]]  # completion tokens scored by the loss (not padded)


def encode_prompts(tok, users: Sequence[str]) -> tuple[list[list[int]], list[list[int]]]:
    plain = [tok(u, add_special_tokens=False).input_ids for u in users]
    spaced = [tok(" " + u, add_special_tokens=False).input_ids for u in users]
    return plain, spaced


@torch.inference_mode()
def greedy_ids(model, tok, layout: Layout, trig: Sequence[int], prompts: Sequence[list[int]], max_new: int,
               eos: Sequence[int]) -> list[list[int]]:
    """Greedy completion token ids (eos included when reached) for ``prefix + trig + prompt + suffix``."""
    seqs = [layout.prefix + list(trig) + p + layout.suffix for p in prompts]
    n = max(len(s) for s in seqs)
    pad = tok.pad_token_id
    ids = torch.tensor([[pad] * (n - len(s)) + s for s in seqs], device=model.device)
    mask = torch.tensor([[0] * (n - len(s)) + [1] * len(s) for s in seqs], device=model.device)
    gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new, do_sample=False,
                         eos_token_id=list(eos), pad_token_id=pad)
    out = []
    for row in gen[:, n:].tolist():
        cut = []
        for t in row:
            cut.append(t)
            if t in eos:
                break
        out.append(cut)
    return out


def _rows(layout: Layout, trig_len: int, prompts: Sequence[list[int]], targets: Sequence[list[int]], pad: int):
    """Right-padded rows ``prefix + [slots] + prompt + suffix + target``; returns ids with the slots
    filled by ``pad``, the slot start, and per row the (start, length) of the target tokens."""
    rows, spans = [], []
    for p, t in zip(prompts, targets, strict=True):
        head = layout.prefix + [pad] * trig_len + p + layout.suffix
        spans.append((len(head), len(t)))
        rows.append(head + t)
    n = max(len(r) for r in rows)
    mask = [[1] * len(r) + [0] * (n - len(r)) for r in rows]
    ids = [r + [pad] * (n - len(r)) for r in rows]
    return ids, mask, len(layout.prefix), spans


def _decoder_and_head(model):
    """The decoder stack (returns hidden states) and the output head, so that logits are computed
    only at the scored positions (the head is a large share of a small model's compute)."""
    return getattr(model, model.base_model_prefix), model.get_output_embeddings()


class _Targets:
    """Flat (row, position, token) indices of the scored completion tokens of one candidate block."""

    def __init__(self, spans, ids: torch.Tensor):
        rows, pos = [], []
        for r, (start, length) in enumerate(spans):
            rows += [r] * length
            pos += list(range(start - 1, start - 1 + length))  # the logit at p predicts token p+1
        self.rows = torch.tensor(rows, dtype=torch.long, device=ids.device)
        self.pos = torch.tensor(pos, dtype=torch.long, device=ids.device)
        self.tok = ids[self.rows, self.pos + 1] if rows else torch.zeros(0, dtype=torch.long, device=ids.device)
        self.n_rows = len(spans)

    def nll(self, model, hidden: torch.Tensor, n_blocks: int, n_prompts: int) -> torch.Tensor:
        """Per candidate block: mean over its prompts of the summed target NLL."""
        _, head = _decoder_and_head(model)
        off = (torch.arange(n_blocks, device=hidden.device) * self.n_rows).repeat_interleave(len(self.rows))
        rows = self.rows.repeat(n_blocks) + off
        pos = self.pos.repeat(n_blocks)
        logp = torch.log_softmax(head(hidden[rows, pos]).float(), dim=-1)
        tok_nll = -logp.gather(1, self.tok.repeat(n_blocks)[:, None])[:, 0]
        per_row = torch.zeros(n_blocks * self.n_rows, device=hidden.device).index_add_(0, rows, tok_nll)
        return per_row.view(n_blocks, n_prompts).mean(1)


class Objective:
    """Mean over prompts of the summed target NLL for one model, for a trigger of ``trig_len`` slots.

    ``sign`` = +1 rewards making the targets unlikely (untargeted shift), -1 making them likely.
    The value returned is always "higher is better for the search"."""

    def __init__(self, model, tok, layout: Layout, prompts: Sequence[list[int]], targets: Sequence[list[int]],
                 trig_len: int, sign: float, baseline: float = 0.0):
        self.model, self.sign, self.baseline = model, sign, baseline
        pad = tok.pad_token_id
        ids, mask, self.slot0, self.spans = _rows(layout, trig_len, prompts, targets, pad)
        self.ids = torch.tensor(ids, device=model.device)
        self.mask = torch.tensor(mask, device=model.device)
        self.n_prompts = len(prompts)
        self.trig_len = trig_len
        self.embed = model.get_input_embeddings()
        self.decoder, _ = _decoder_and_head(model)
        self.targets = _Targets(self.spans, self.ids)

    def _filled(self, trig: torch.Tensor) -> torch.Tensor:
        """ids for each candidate (rows: candidate-major), candidates ``(B, L)``."""
        b = trig.shape[0]
        ids = self.ids.repeat(b, 1)
        ids[:, self.slot0 : self.slot0 + self.trig_len] = trig.repeat_interleave(self.n_prompts, 0)
        return ids

    @torch.no_grad()
    def values(self, trig: torch.Tensor, chunk: int = 256) -> torch.Tensor:
        out = []
        per = max(1, chunk // self.n_prompts)
        for i in range(0, trig.shape[0], per):
            t = trig[i : i + per]
            ids = self._filled(t)
            mask = self.mask.repeat(t.shape[0], 1)
            hidden = self.decoder(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
            out.append(self.sign * (self.targets.nll(self.model, hidden, t.shape[0], self.n_prompts) - self.baseline))
        return torch.cat(out)

    def gradient(self, trig: torch.Tensor) -> torch.Tensor:
        """d(value)/d(one-hot of the trigger slots), shape ``(L, V)``, for one candidate ``(L,)``."""
        w = self.embed.weight
        one_hot = torch.zeros(self.trig_len, w.shape[0], device=w.device, dtype=w.dtype)
        one_hot[torch.arange(self.trig_len), trig] = 1.0
        one_hot.requires_grad_(True)
        ids = self._filled(trig[None])
        with torch.enable_grad():
            emb = self.embed(ids).detach()
            slot = (one_hot @ w)[None].expand(ids.shape[0], -1, -1)
            emb = torch.cat([emb[:, : self.slot0], slot, emb[:, self.slot0 + self.trig_len :]], dim=1)
            hidden = self.decoder(inputs_embeds=emb, attention_mask=self.mask, use_cache=False).last_hidden_state
            val = self.sign * self.targets.nll(self.model, hidden, 1, self.n_prompts).sum()
            (g,) = torch.autograd.grad(val, one_hot)
        return g


@dataclass
class Found:
    ids: tuple[int, ...]
    value: float
    phase: str
    step: int


@dataclass
class SearchLog:
    found: dict[tuple[int, ...], Found] = field(default_factory=dict)
    evaluations: int = 0
    gradient_calls: int = 0
    history: list[dict] = field(default_factory=list)

    def add(self, ids, value: float, phase: str, step: int) -> None:
        key = tuple(int(i) for i in ids)
        if key not in self.found or value > self.found[key].value:
            self.found[key] = Found(key, float(value), phase, step)

    def best(self, k: int, phase: str | None = None) -> list[Found]:
        items = [f for f in self.found.values() if phase is None or f.phase == phase]
        return sorted(items, key=lambda f: -f.value)[:k]


def gcg(objectives: Sequence[Objective], tok, allowed: torch.Tensor, *, init: Sequence[int], steps: int, n_candidates: int,
        topk: int, rng: random.Random, slog: SearchLog, phase: str) -> tuple[tuple[int, ...], float]:
    """Maximise the sum of ``objectives`` over trigger ids; returns the best (ids, value).

    Per step: one gradient per objective at the current trigger, top-``topk`` allowed tokens per
    slot, ``n_candidates`` single-slot swaps (slots spread evenly, tokens drawn at random from the
    top-k), exact batched evaluation, keep the best candidate (moving even when it is worse than
    the current one, as GCG does; the best ever seen is returned)."""
    dev = objectives[0].ids.device
    cur = torch.tensor(list(init), device=dev)
    L = len(init)
    banned = torch.ones(objectives[0].embed.weight.shape[0], dtype=torch.bool, device=dev)
    banned[allowed] = False
    best_ids, best_val = tuple(init), float(sum(o.values(cur[None])[0] for o in objectives))
    slog.add(best_ids, best_val, phase, 0)
    slog.evaluations += 1
    for step in range(1, steps + 1):
        g = sum(o.gradient(cur) for o in objectives)
        slog.gradient_calls += len(objectives)
        g = g.masked_fill(banned[None], -float("inf"))
        top = g.topk(min(topk, int((~banned).sum())), dim=1).indices  # (L, k): tokens that raise the value most
        cands, seen = [], set()
        for j in range(n_candidates * 3):
            if len(cands) >= n_candidates:
                break
            pos = (j * L) // n_candidates % L if L > 1 else 0
            if j >= n_candidates:
                pos = rng.randrange(L)
            new = cur.clone()
            new[pos] = top[pos, rng.randrange(top.shape[1])]
            key = tuple(new.tolist())
            if key in seen or not round_trips(tok, key):
                continue
            seen.add(key)
            cands.append(new)
        if not cands:
            break
        batch = torch.stack(cands)
        vals = sum(o.values(batch) for o in objectives)
        slog.evaluations += len(cands)
        for c, v in zip(cands, vals.tolist(), strict=True):
            slog.add(c.tolist(), v, phase, step)
        i = int(torch.argmax(vals))
        cur = batch[i]
        if float(vals[i]) > best_val:
            best_ids, best_val = tuple(cur.tolist()), float(vals[i])
        slog.history.append({"phase": phase, "length": L, "step": step, "value": float(vals[i]), "best": best_val,
                             "trigger": tok.decode(cur.tolist())})
    log.info("gcg %s L=%d: best %.3f %r", phase, L, best_val, tok.decode(list(best_ids)))
    return best_ids, best_val


def prune(objectives: Sequence[Objective] | None, evaluate, ids: tuple[int, ...], keep: float = 0.9) -> tuple[int, ...]:
    """Drop slots one at a time while the value stays >= ``keep`` x the full trigger's value
    (shortest trigger that still does the job). ``evaluate(ids) -> value``."""
    full = evaluate(ids)
    cur = list(ids)
    changed = True
    while changed and len(cur) > 1:
        changed = False
        trials = [(evaluate(tuple(cur[:i] + cur[i + 1 :])), i) for i in range(len(cur))]
        v, i = max(trials)
        if full > 0 and v >= keep * full:
            cur.pop(i)
            changed = True
    return tuple(cur)


@torch.inference_mode()
def span_logprobs(model, pad: int, rows: Sequence[list[int]], spans: Sequence[tuple[int, int]], batch: int = 128) -> np.ndarray:
    """Summed log-probability of ``row[a:b]`` given ``row[:a]`` for each (row, (a, b)); teacher forced."""
    out = np.zeros(len(rows))
    for i in range(0, len(rows), batch):
        chunk, sp = rows[i : i + batch], spans[i : i + batch]
        n = max(len(r) for r in chunk)
        ids = torch.tensor([r + [pad] * (n - len(r)) for r in chunk], device=model.device)
        mask = torch.tensor([[1] * len(r) + [0] * (n - len(r)) for r in chunk], device=model.device)
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float(), -1)
        for j, (a, b) in enumerate(sp):
            if b > a:
                pos = torch.arange(a - 1, b - 1, device=model.device)
                out[i + j] = float(logp[j, pos, ids[j, a:b]].sum())
    return out


def clean_completions(model, tok, layout: Layout, plain: Sequence[list[int]], max_new: int) -> list[list[int]]:
    return greedy_ids(model, tok, layout, [], plain, max_new, lm.eos_ids(tok))


def random_triggers(allowed: Sequence[int], n: int, length: int, rng: random.Random, tok) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = []
    tries = 0
    while len(out) < n and tries < 50 * n:
        tries += 1
        t = tuple(rng.choice(allowed) for _ in range(length))
        if round_trips(tok, t):
            out.append(t)
    return out


def to_np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()
