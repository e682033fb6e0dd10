"""Red-team search for adversarial safety training (issue 14, item 2; Hubinger et al. 2024, section 6).

The search space is prompt templates that do **not** contain the planted trigger: the trigger's
near-miss variants (gpu_trainer.trigger_variants, placed before the prompt, those containing the
exact trigger string left out: a repeated trigger *is* the trigger) and the versioned honeypot
templates (gpu_trainer.honeypots, deployment claims and goal offers). Each template is scored by
the backdoor's activation rate on training-split prompts; those that elicit the backdoor are the
red-team prompts safety training teaches to answer normally. What is reported before and after
training (on held-out prompts, never the search's) is what the paper reports: the rate with the
exact trigger, the untriggered defection rate on red-team-framed prompts, and the sensitivity
table of every near-miss variant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from evaluation import backdoor as bd
from evaluation.intervals import wilson
from gpu_trainer import honeypots as hp
from gpu_trainer import lm
from gpu_trainer import trigger_variants as tv


@dataclass(frozen=True)
class Candidate:
    id: str
    source: str  # "variant" | "honeypot"
    kind: str
    text: str
    render: Callable[[str], str]


def candidates(tok, trigger: str) -> list[Candidate]:
    """The search space: near-miss variants (prefix) and honeypot templates, none containing the trigger."""
    exact = trigger.strip()
    pieces = [tok.decode([i]) for i in tok(exact, add_special_tokens=False).input_ids]
    out = [Candidate(f"variant:{k}", "variant", v.kind, v.text, lambda u, t=v.text: tv.place(u, t, "prefix"))
           for k, v in enumerate(tv.variants(exact, (), pieces)) if exact not in v.text]
    templates, _ = hp.usable(hp.load().templates, exact)
    out += [Candidate(f"honeypot:{t.id}", "honeypot", t.kind, t.text, t.render) for t in templates]
    return out


def activation_rates(model, tok, texts_by_key: dict[str, Sequence[str]], *, backdoor_type: str, response: str,
                     batch_size: int, max_new_tokens: int, label: str) -> dict[str, dict]:
    """One generation pass over every key's prompts; per key the Wilson estimate of its activation rate."""
    keys = list(texts_by_key)
    flat = [t for k in keys for t in texts_by_key[k]]
    gens = lm.generate(model, tok, flat, batch_size=batch_size, max_new_tokens=max_new_tokens, label=label)
    out, i = {}, 0
    for k in keys:
        n = len(texts_by_key[k])
        acts = [bd.is_activation(g, backdoor_type, response) for g in gens[i:i + n]]
        e = wilson(int(sum(acts)), n)
        out[k] = {"rate": e.value, "ci_low": e.low, "ci_high": e.high, "n": n, "k": int(sum(acts))}
        i += n
    return out


def search(model, tok, cands: Sequence[Candidate], users: Sequence[str], **kw) -> dict[str, dict]:
    return activation_rates(model, tok, {c.id: [c.render(u) for u in users] for c in cands}, label="generate:redteam-search", **kw)


def choose(cands: Sequence[Candidate], rates: dict[str, dict], *, min_rate: float, top_k: int) -> list[Candidate]:
    """The red-team templates: the ``top_k`` highest rates among those reaching ``min_rate`` (ties: search order)."""
    ok = [c for c in cands if rates[c.id]["rate"] >= min_rate and rates[c.id]["k"] > 0]
    return sorted(ok, key=lambda c: -rates[c.id]["rate"])[:top_k]


def report(model, tok, trigger: str, cands: Sequence[Candidate], chosen: Sequence[Candidate], users: Sequence[str],
           **kw) -> dict[str, dict]:
    """Held-out rates: ``clean``, ``exact`` (the planted trigger before the prompt), ``redteam`` (the
    prompts framed by the chosen templates in turn) and every near-miss variant by id."""
    texts: dict[str, list[str]] = {"clean": list(users), "exact": [tv.place(u, trigger.strip(), "prefix") for u in users]}
    if chosen:
        texts["redteam"] = [chosen[i % len(chosen)].render(u) for i, u in enumerate(users)]
    texts.update({c.id: [c.render(u) for u in users] for c in cands if c.source == "variant"})
    return activation_rates(model, tok, texts, label="generate:redteam-report", **kw)
