"""One JSON normaliser for everything Vigil stores or prints as JSON.

PostgreSQL's ``jsonb`` refuses ``NaN`` and infinities and the JSON standard has neither, so a value
that is not a finite number is stored as ``null`` (a measurement that could not be made) or, where
the caller must keep what a document said (an imported parameter), as its text (``"nan"``,
``"inf"``, ``"-inf"``). numpy scalars become Python numbers (duck-typed: ``.item()``; no numpy
import here), dates and datetimes ISO strings, tuples and sets lists, keys strings, and any other
object its ``str()``. Standard library only.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from pathlib import PurePath
from typing import Any, Literal

NonFinite = Literal["null", "text"]


def to_json(value: Any, *, nonfinite: NonFinite = "null") -> Any:
    """``value`` as plain JSON types (see the module docstring)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if not isinstance(value, (int, float, dict, list, tuple, set, frozenset)) and hasattr(value, "item"):
        try:  # a numpy scalar (or 0-d array)
            value = value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        return None if nonfinite == "null" else str(value)
    if isinstance(value, dict):
        return {str(k): to_json(v, nonfinite=nonfinite) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(v, nonfinite=nonfinite) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    return str(value)


def dumps(value: Any, *, nonfinite: NonFinite = "null", **kwargs: Any) -> str:
    """``json.dumps`` of ``to_json(value)``; never writes NaN or Infinity."""
    return json.dumps(to_json(value, nonfinite=nonfinite), allow_nan=False, **kwargs)
