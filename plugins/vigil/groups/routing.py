"""Deterministic traffic split: a request id always lands on the same group member.

A request's position in [0, 1) is the first 8 bytes of sha256("<group slug>\\0<request id>") read
as an unsigned integer over 2**64; members own consecutive slices of [0, 1) sized by their traffic
weights, in a fixed order (model version id), so the same id with the same weights always gets
the same member, on any machine and in any process (Python's ``hash()`` is salted per process;
this is not). Salting with the group slug keeps two groups' splits independent.

Changing weights moves only the requests whose position falls in the slices that changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np

from contract.errors import UserError

_SCALE = float(2**64)


class RoutingError(UserError):
    pass


def position(salt: str, request_id: str) -> float:
    """Where a request falls in [0, 1)."""
    h = hashlib.sha256(f"{salt}\0{request_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / _SCALE


def positions(salt: str, request_ids: Iterable[str]) -> np.ndarray:
    return np.fromiter((position(salt, str(r)) for r in request_ids), dtype=float)


def check_weights(weights: dict[int, float], tol: float = 1e-6) -> None:
    """Routed members' weights must be in [0, 1] and sum to 1."""
    if not weights:
        raise RoutingError("the group has no routed members: add a champion (weight > 0) before scoring")
    for k, w in weights.items():
        if not 0 <= w <= 1:
            raise RoutingError(f"traffic weight of member {k} is {w}; weights are between 0 and 1")
    total = sum(weights.values())
    if abs(total - 1) > tol:
        raise RoutingError(
            f"traffic weights sum to {total:.6g}, not 1: adjust them with `vigil groups add NAME MODEL:VERSION --weight W` "
            f"(current: {', '.join(f'{k}={w:g}' for k, w in sorted(weights.items()))})"
        )


def assign(salt: str, request_ids: Sequence[str], weights: dict[int, float]) -> np.ndarray:
    """The member key (e.g. model version id) for each request id, by traffic weight."""
    check_weights(weights)
    keys = sorted(k for k, w in weights.items() if w > 0)
    cuts = np.cumsum([weights[k] for k in keys])
    cuts[-1] = 1.0  # guard against float rounding leaving a sliver unassigned
    pos = positions(salt, request_ids)
    return np.asarray(keys)[np.searchsorted(cuts, pos, side="right")]
