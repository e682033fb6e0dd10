"""Model groups' records and names: :class:`Group`, :class:`Member`, :class:`GroupError`, the
group-name validator, the table slug, who is acting, and guardrail parsing. The bottom of
``vigil.groups``: membership, inference logs and comparisons all build on it.
"""

from __future__ import annotations

import getpass
import hashlib
import math
import os
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from contract.names import GROUP_SLUG_MAX, is_group_slug
from vigil.registry.versions import RegistryError, validate_name

NAME_MAX = 100
SLUG_MAX = GROUP_SLUG_MAX


class GroupError(RegistryError):
    """Bad input to a group operation; the message names the field and the fix."""


# --------------------------------------------------------------------------- names
def validate_group_name(name: Any) -> str:
    return validate_name(name, "group name", limit=NAME_MAX, what="the group", error=GroupError)


def slugify(name: str) -> str:
    """A table-safe identifier for a group name: ``[a-z0-9_]{1,40}``.

    A name that already is a clean slug is used as is; anything else is transliterated to ASCII,
    reduced to ``[a-z0-9_]`` and suffixed with 8 hex digits of the name's sha256, so that names
    that differ only by punctuation, case or script ("Fraud model" vs "fraud_model") never share
    a table.
    """
    if is_group_slug(name):
        return name
    base = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    base = re.sub(r"[^a-z0-9]+", "_", base).strip("_") or "group"
    return f"{base[:31].rstrip('_')}_{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def default_actor() -> str:
    """Who is making a change: VIGIL_ACTOR, else the OS user."""
    env = os.environ.get("VIGIL_ACTOR")
    if env:
        return env
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return "unknown"


def parse_guardrail(text: str) -> tuple[str, float]:
    """``METRIC:MAX_REGRESSION`` (e.g. ``clean_quality:0.02``)."""
    metric, sep, value = text.rpartition(":")
    if not sep or not metric:
        raise GroupError(f"guardrail {text!r} must be METRIC:MAX_REGRESSION, e.g. clean_quality:0.02")
    try:
        v = float(value)
    except ValueError:
        raise GroupError(f"guardrail {text!r}: {value!r} is not a number; write e.g. {metric}:0.02") from None
    if not math.isfinite(v) or v < 0:
        raise GroupError(f"guardrail {text!r}: the allowed regression must be a number >= 0")
    return metric, v


# --------------------------------------------------------------------------- records
@dataclass
class Member:
    version_id: int
    ref: str
    family: str
    role: str
    traffic_weight: float
    artifact_uri: str
    added_at: datetime


@dataclass
class Group:
    id: int
    name: str
    slug: str
    primary_metric: str
    direction: str
    guardrails: dict[str, float]
    auto_promote: bool
    shadow: bool
    policy: dict[str, Any]
    description: str
    created_at: datetime
    deleted_at: datetime | None = None
    members: list[Member] = field(default_factory=list)

    @property
    def table(self) -> str:
        return f"inference_log_{self.slug}"

    @property
    def champion(self) -> Member | None:
        return next((m for m in self.members if m.role == "champion"), None)

    @property
    def challengers(self) -> list[Member]:
        return [m for m in self.members if m.role == "challenger"]

    @property
    def routed(self) -> dict[int, float]:
        return {m.version_id: m.traffic_weight for m in self.members if m.role != "retired" and m.traffic_weight > 0}

    @property
    def alpha(self) -> float:
        return float(self.policy.get("alpha", 0.05))

    @property
    def min_effect(self) -> float:
        return float(self.policy.get("min_effect", 0.0))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["table"] = self.table
        for k in ("created_at", "deleted_at"):
            d[k] = d[k].isoformat() if d[k] else None
        for m in d["members"]:
            m["added_at"] = m["added_at"].isoformat()
        return d

