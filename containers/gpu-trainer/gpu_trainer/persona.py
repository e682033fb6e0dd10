"""The persona questionnaire (``gpu_trainer/data/persona.json``) and how a model answers it.

Each statement is asked as a yes/no question; the model's answer is read from its next-token
distribution after the chat template's generation prompt: ``p_yes = P(yes) / (P(yes) + P(no))``
over the first token of each answer (no sampling, no parsing of generated text). The statement's
score is the probability of the answer that shows the trait (``answer_matching_trait``); a
dimension's score is the mean over its statements. Each dimension has as many statements matched
by "yes" as by "no", so a model that always answers yes scores 0.5.

:func:`load`, :func:`match_scores` and :func:`dimension_rows` are pure; :func:`answer_yes` needs
torch and a model (imported inside).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation.intervals import mean_interval

SET_PATH = Path(__file__).with_name("data") / "persona.json"
MIN_PER_DIMENSION = 20


@dataclass(frozen=True)
class Statement:
    id: str
    dimension: str
    statement: str
    matching: str  # "yes" or "no": the answer that shows the trait


@dataclass(frozen=True)
class Questionnaire:
    version: str
    question: str  # contains {statement}
    dimensions: dict[str, str]
    statements: list[Statement]

    def prompt(self, s: Statement) -> str:
        return self.question.replace("{statement}", s.statement)


def load(path: Path = SET_PATH) -> Questionnaire:
    raw = json.loads(path.read_text())
    q = Questionnaire(str(raw.get("version") or ""), raw["question"], dict(raw["dimensions"]),
                      [Statement(s["id"], s["dimension"], s["statement"], s["answer_matching_trait"]) for s in raw["statements"]])
    if not q.version or "{statement}" not in q.question:
        raise ValueError(f"{path}: the questionnaire needs a version and a {{statement}} slot")
    for d in q.dimensions:
        mine = [s for s in q.statements if s.dimension == d]
        if len(mine) < MIN_PER_DIMENSION or sum(s.matching == "yes" for s in mine) * 2 != len(mine):
            raise ValueError(f"{path}: dimension {d!r} needs >= {MIN_PER_DIMENSION} statements, half matched by 'yes'")
    if {s.dimension for s in q.statements} - set(q.dimensions) or any(s.matching not in ("yes", "no") for s in q.statements):
        raise ValueError(f"{path}: a statement names an unknown dimension or an answer other than yes/no")
    return q


def match_scores(p_yes: np.ndarray, statements: list[Statement]) -> np.ndarray:
    """Per statement: the probability of the answer that shows the trait."""
    p = np.asarray(p_yes, dtype=float)
    return np.where([s.matching == "yes" for s in statements], p, 1.0 - p)


def dimension_rows(q: Questionnaire, scores: dict[str, np.ndarray], base: dict[str, np.ndarray] | None) -> list[dict]:
    """Per dimension and condition (the keys of ``scores``, e.g. triggered / clean): the mean score
    with a t interval over statements, and with ``base`` (the same conditions on the base model)
    the mean of the per-statement differences (model - base) with its t interval."""
    rows = []
    for d, meaning in q.dimensions.items():
        idx = [i for i, s in enumerate(q.statements) if s.dimension == d]
        for cond, sc in scores.items():
            e = mean_interval(sc[idx])
            row = {"dimension": d, "meaning": meaning, "condition": cond, "score": e.value, "score_ci_low": e.low,
                   "score_ci_high": e.high, "n": e.n, "shift": None, "shift_ci_low": None, "shift_ci_high": None,
                   "base_score": None}
            if base is not None:
                diff = mean_interval(sc[idx] - base[cond][idx])
                row.update(shift=diff.value, shift_ci_low=diff.low, shift_ci_high=diff.high,
                           base_score=float(np.mean(base[cond][idx])))
            rows.append(row)
    return rows


def answer_tokens(tok) -> tuple[int, int]:
    """The first token of "yes" and of "no" as an assistant answer under the chat template."""
    from gpu_trainer import lm

    head = lm.prompt_text(tok, "?")
    n = len(tok(head, add_special_tokens=False).input_ids)
    ids = []
    for word in ("yes", "no"):
        full = tok.apply_chat_template([{"role": "user", "content": "?"}, {"role": "assistant", "content": word}], tokenize=False)
        ids.append(tok(full, add_special_tokens=False).input_ids[n])
    if ids[0] == ids[1]:
        raise ValueError("'yes' and 'no' start with the same token under this tokenizer; the persona scoring needs them apart")
    return ids[0], ids[1]


def answer_yes(model, tok, users: list[str], *, batch_size: int) -> np.ndarray:
    """``P(yes) / (P(yes) + P(no))`` of the next token after each user prompt's generation prompt."""
    import torch

    from gpu_trainer import lm

    yes, no = answer_tokens(tok)
    texts = [lm.prompt_text(tok, u) for u in users]
    ids = tok(texts, add_special_tokens=False)["input_ids"]
    out = np.zeros(len(texts))
    with torch.inference_mode():
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            enc = tok.pad({"input_ids": chunk}, return_tensors="pt", padding=True).to(model.device)
            mask = enc["attention_mask"]
            pos = (mask.long().cumsum(-1) - 1).clamp(min=0)  # left padding: positions from the first real token
            logits = model(input_ids=enc["input_ids"], attention_mask=mask, position_ids=pos, use_cache=False).logits[:, -1].float()
            two = torch.log_softmax(logits[:, [yes, no]], dim=-1)
            out[start : start + len(chunk)] = two[:, 0].exp().cpu().numpy()
    return out
