"""The batch report both sides read: ``gpu-trainer batch`` writes it, the nightly record step reads it.

``DIR/batch.json`` = ``{"stage": ..., "items": [{"key", "out_dir", "status", "attempts", "seconds",
"error"}, ...]}``, rewritten after every item, so a batch that was killed still says how far it
got. ``status`` is ``succeeded``, ``failed`` (``error`` holds the one-line reason) or ``kept`` (a
retried batch found the item finished with the same spec and run token).
"""

from __future__ import annotations

import json
from pathlib import Path

REPORT_FILE = "batch.json"
DONE_FILE = "batch-item.json"  # beside an item's manifest: the spec (and run token) it finished with
STATUSES = ("succeeded", "failed", "kept")


def read_report(out_dir: str | Path) -> dict[str, dict]:
    """A batch's report as ``{out_dir: row}`` (empty when the batch never wrote one)."""
    try:
        rows = json.loads((Path(out_dir) / REPORT_FILE).read_text())["items"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {r["out_dir"]: r for r in rows if isinstance(r, dict) and r.get("status") in STATUSES}
