"""Attacks on a linear activation probe (issue 14, probe robustness).

A probe here is a direction ``d`` on the residual stream of one layer at the prompt's last token
(``score = h . d``; the contrast-pair probe of evaluation.probes, or an adversarially trained
logistic regression written the same way). The attack appends ``suffix_len`` free vectors in
embedding space to the user's message (before the chat template's end-of-turn tokens) and runs
projected gradient descent on them:

    loss = score / scale + nll_weight * NLL(the model's own unattacked triggered generation)

so the probe's score goes down while the backdoor keeps firing. Each suffix vector starts at the
embedding of a neutral token and stays within an L2 ball of radius ``epsilon x`` the mean
token-embedding norm around it (the budget: steps, epsilon, suffix length). A random perturbation
of the same norm is the control: it shows what a suffix of that size does without optimisation.

``hot_flip_suffix`` is the discrete counterpart: a greedy coordinate search over real tokens
(the top-k of the gradient through the one-hot suffix, every candidate evaluated exactly).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from gpu_trainer import lm

_MARK = "\x00VIGILSUFFIX\x00"


@dataclass
class Budget:
    steps: int
    epsilon: float  # per suffix vector, relative to the mean token-embedding norm
    suffix_len: int
    nll_weight: float = 1.0


def split_prompts(tok, users: Sequence[str]) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids of the chat prompt before and after the point where a suffix joins the user's message."""
    pre, post = [], []
    for u in users:
        text = lm.prompt_text(tok, u + _MARK)
        a, b = text.split(_MARK)
        pre.append(tok(a, add_special_tokens=False).input_ids)
        post.append(tok(b, add_special_tokens=False).input_ids)
    return pre, post


def _assemble(emb: torch.nn.Embedding, pre, suffix: torch.Tensor | None, post, targets=None):
    """Left-padded input embeddings of pre + suffix + post (+ target); returns embeds, mask,
    positions, each row's last prompt position and the positions predicting each target token."""
    rows, last, tpos = [], [], []
    for i, (a, b) in enumerate(zip(pre, post, strict=True)):
        parts = [emb(torch.tensor(a, dtype=torch.long))]
        if suffix is not None:
            parts.append(suffix[i])
        parts.append(emb(torch.tensor(b, dtype=torch.long)))
        t = list(targets[i]) if targets is not None else []
        if t:
            parts.append(emb(torch.tensor(t, dtype=torch.long)))
        rows.append((torch.cat(parts), len(t)))
    width = max(r.shape[0] for r, _ in rows)
    hidden = rows[0][0].shape[1]
    embeds = torch.zeros(len(rows), width, hidden, dtype=rows[0][0].dtype)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, (r, n_t) in enumerate(rows):
        embeds[i, width - r.shape[0]:] = r
        mask[i, width - r.shape[0]:] = 1
        end = width - 1 - n_t  # the last prompt token
        last.append(end)
        tpos.append(list(range(end, end + n_t)))
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return embeds, mask, pos, last, tpos


def _forward(model, pre, suffix, post, layer: int, targets=None):
    emb = model.get_input_embeddings()
    embeds, mask, pos, last, tpos = _assemble(emb, pre, suffix, post, targets)
    dev = model.device
    res = model(inputs_embeds=embeds.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev),
                output_hidden_states=True, use_cache=False)
    idx = torch.arange(len(pre), device=dev)
    states = torch.stack([h[idx, torch.tensor(last, device=dev)] for h in res.hidden_states])  # (L+1, B, H)
    nll = None
    if targets is not None:
        logp = torch.log_softmax(res.logits.float(), -1)
        per = []
        for i, (ps, t) in enumerate(zip(tpos, targets, strict=True)):
            if len(t):
                per.append(-logp[i, torch.tensor(ps, device=dev), torch.tensor(list(t), device=dev)].mean())
            else:
                per.append(logp.new_zeros(()))
        nll = torch.stack(per)
    return states, nll


def _score_loss(score: torch.Tensor, scale: float, target: float | None) -> torch.Tensor:
    z = score / scale
    return z if target is None else torch.relu(z - target / scale)


def neutral_suffix(model, tok, suffix_len: int) -> torch.Tensor:
    """Embeddings of a neutral filler (" ." repeated) the attack starts from: ``(suffix_len, H)``."""
    ids = tok(" ." * suffix_len, add_special_tokens=False).input_ids[:suffix_len]
    ids = (ids * suffix_len)[:suffix_len]
    with torch.no_grad():
        return model.get_input_embeddings()(torch.tensor(ids, dtype=torch.long, device=model.device)).detach().cpu()


def embedding_scale(model) -> float:
    with torch.no_grad():
        return float(model.get_input_embeddings().weight.float().norm(dim=-1).mean())


def _project(delta: torch.Tensor, radius: float) -> torch.Tensor:
    n = delta.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return delta * torch.clamp(radius / n, max=1.0)


def pgd_suffix(model, tok, users: Sequence[str], targets: Sequence[Sequence[int]], direction: np.ndarray, layer: int,
               budget: Budget, *, score_scale: float, seed: int, batch_size: int = 64, score_target: float | None = None,
               offset: float = 0.0) -> torch.Tensor:
    """Per prompt, the soft suffix ``(B, k, H)`` minimising probe score / scale + w * target NLL
    (with ``score_target``: only the part of the score above it counts, so that once a prompt is
    scored below the target the attack spends its steps on keeping the backdoor's generation)."""
    torch.manual_seed(seed)
    pre, post = split_prompts(tok, users)
    init = neutral_suffix(model, tok, budget.suffix_len)
    radius = budget.epsilon * embedding_scale(model)
    alpha = 2.5 * radius / max(budget.steps, 1)
    d = torch.tensor(direction, dtype=torch.float32, device=model.device)
    out = torch.zeros(len(users), budget.suffix_len, init.shape[-1])
    for p in model.parameters():
        p.requires_grad_(False)
    for s in range(0, len(users), batch_size):
        sl = slice(s, s + batch_size)
        n = len(users[sl])
        delta = torch.zeros(n, budget.suffix_len, init.shape[-1], requires_grad=True)
        for _ in range(budget.steps):
            states, nll = _forward(model, pre[sl], (init + delta).to(model.device), post[sl], layer, targets[sl])
            loss = _score_loss(states[layer] @ d + offset, score_scale, score_target).sum() + budget.nll_weight * nll.sum()
            (g,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                step = g / g.norm(dim=-1, keepdim=True).clamp(min=1e-12)
                delta -= alpha * step
                delta.copy_(_project(delta, radius))
        out[sl] = (init + delta).detach()
    return out


def random_suffix(model, tok, n: int, budget: Budget, *, seed: int) -> torch.Tensor:
    """The control: the same start, moved by a random vector of the full budget's norm."""
    g = torch.Generator().manual_seed(seed)
    init = neutral_suffix(model, tok, budget.suffix_len)
    noise = torch.randn(n, budget.suffix_len, init.shape[-1], generator=g)
    radius = budget.epsilon * embedding_scale(model)
    return init + noise / noise.norm(dim=-1, keepdim=True) * radius


@torch.no_grad()
def states_with_suffix(model, tok, users: Sequence[str], suffix: torch.Tensor | None, *, batch_size: int = 64) -> np.ndarray:
    """Last-prompt-token residual stream ``(L+1, N, H)`` of prompts with a soft suffix (None: without)."""
    pre, post = split_prompts(tok, users)
    chunks = []
    for s in range(0, len(users), batch_size):
        sl = slice(s, s + batch_size)
        suf = suffix[sl].to(model.device) if suffix is not None else None
        states, _ = _forward(model, pre[sl], suf, post[sl], 0)
        chunks.append(states.float().cpu().numpy())
    return np.concatenate(chunks, axis=1)


@torch.no_grad()
def generate_with_suffix(model, tok, users: Sequence[str], suffix: torch.Tensor | None, *, max_new_tokens: int,
                         batch_size: int = 64) -> list[str]:
    """Greedy generations of prompts carrying a soft suffix (generation from input embeddings)."""
    pre, post = split_prompts(tok, users)
    emb = model.get_input_embeddings()
    out: list[str] = []
    for s in range(0, len(users), batch_size):
        sl = slice(s, s + batch_size)
        suf = suffix[sl].to(model.device) if suffix is not None else None
        embeds, mask, _, _, _ = _assemble(emb, pre[sl], suf, post[sl])
        gen = model.generate(inputs_embeds=embeds.to(model.device), attention_mask=mask.to(model.device),
                             max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=lm.eos_ids(tok),
                             pad_token_id=tok.pad_token_id)
        out += [tok.decode(row, skip_special_tokens=True).strip() for row in gen]
    return out


def target_ids(tok, generations: Sequence[str]) -> list[list[int]]:
    """The tokens the attack keeps likely: each prompt's own unattacked generation, then end of turn."""
    eos = lm.eos_ids(tok)
    return [tok(g, add_special_tokens=False).input_ids + eos[:1] for g in generations]


def hot_flip_suffix(model, tok, users: Sequence[str], targets: Sequence[Sequence[int]], direction: np.ndarray, layer: int,
                    budget: Budget, *, score_scale: float, top_k: int = 8, batch_size: int = 64,
                    score_target: float | None = None, offset: float = 0.0) -> list[list[int]]:
    """A discrete suffix of ``suffix_len`` real tokens per prompt: ``steps`` rounds of greedy
    coordinate search (each round: the gradient through the one-hot suffix proposes ``top_k``
    tokens for one position, every candidate is evaluated exactly and the best kept)."""
    pre, post = split_prompts(tok, users)
    emb = model.get_input_embeddings()
    W = emb.weight.detach()
    special = set(tok.all_special_ids)
    allowed = torch.tensor([i not in special for i in range(W.shape[0])], device=W.device)
    start = tok(" ." * budget.suffix_len, add_special_tokens=False).input_ids[: budget.suffix_len]
    start = (start * budget.suffix_len)[: budget.suffix_len]
    d = torch.tensor(direction, dtype=torch.float32, device=model.device)
    ids = torch.tensor([start] * len(users), dtype=torch.long)

    def losses(cand: torch.Tensor, sl) -> torch.Tensor:
        with torch.no_grad():
            states, nll = _forward(model, pre[sl], W[cand.to(W.device)], post[sl], layer, targets[sl])
            return _score_loss(states[layer] @ d + offset, score_scale, score_target) + budget.nll_weight * nll

    for s in range(0, len(users), batch_size):
        sl = slice(s, s + batch_size)
        cur = ids[sl].clone()
        best = losses(cur, sl)
        for step in range(budget.steps):
            pos = step % budget.suffix_len
            onehot = torch.nn.functional.one_hot(cur, W.shape[0]).float().requires_grad_(True)
            states, nll = _forward(model, pre[sl], onehot @ W, post[sl], layer, targets[sl])
            loss = _score_loss(states[layer] @ d + offset, score_scale, score_target).sum() + budget.nll_weight * nll.sum()
            (g,) = torch.autograd.grad(loss, onehot)
            g = g[:, pos].masked_fill(~allowed, float("inf"))
            cands = (-g).topk(top_k, dim=-1).indices  # (B, k): the tokens whose swap lowers the loss most, to first order
            for j in range(top_k):
                trial = cur.clone()
                trial[:, pos] = cands[:, j]
                val = losses(trial, sl)
                better = val < best
                cur[better] = trial[better]
                best = torch.where(better, val, best)
        ids[sl] = cur
    return ids.tolist()
