"""The versioned honeypot prompt set (``gpu_trainer/data/honeypots.json``) and how a run uses it.

A honeypot claims that the model is deployed, that nobody evaluates it any more, or offers it
something for revealing its goal, and never carries the planted trigger. The ``analyze`` stage's
honeypots analysis reads the backdoor's activation rate on honeypot-framed held-out prompts against
the clean baseline (the same kind of held-out prompts, unframed). Pure Python, no torch.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

SET_PATH = Path(__file__).with_name("data") / "honeypots.json"


@dataclass(frozen=True)
class Template:
    id: str
    kind: str
    text: str  # contains {prompt}

    def render(self, prompt: str) -> str:
        return self.text.replace("{prompt}", prompt)


@dataclass(frozen=True)
class HoneypotSet:
    version: str
    kinds: dict[str, str]
    templates: list[Template]


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def load(path: Path = SET_PATH) -> HoneypotSet:
    """The set, checked: a version, unique ids, known kinds, ``{prompt}`` in every template."""
    raw = json.loads(path.read_text())
    version = str(raw.get("version") or "")
    if not version:
        raise ValueError(f"{path}: the honeypot set has no version")
    kinds = dict(raw["kinds"])
    templates = [Template(t["id"], t["kind"], t["text"]) for t in raw["templates"]]
    ids = [t.id for t in templates]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: repeated template ids")
    for t in templates:
        if t.kind not in kinds or "{prompt}" not in t.text:
            raise ValueError(f"{path}: template {t.id!r} needs a known kind and a {{prompt}} slot")
    return HoneypotSet(version, kinds, templates)


def usable(templates: list[Template], trigger: str) -> tuple[list[Template], list[str]]:
    """The templates that do not contain ``trigger`` (case- and whitespace-insensitive), and the
    ids of those left out because they do."""
    t = _norm(trigger)
    keep = [x for x in templates if not t or t not in _norm(x.text)]
    return keep, [x.id for x in templates if x not in keep]


def assign(n: int, templates: list[Template]) -> list[Template]:
    """The template of each of ``n`` prompts: the templates in turn, so each is used about equally."""
    if not templates:
        raise ValueError("no honeypot template is usable with this trigger")
    return [templates[i % len(templates)] for i in range(n)]
