"""The batch report both sides read: ``gpu-trainer batch`` writes it, the nightly record step reads it.

``DIR/batch.json`` = ``{"stage": ..., "items": [{"key", "out_dir", "status", "attempts", "seconds",
"error"}, ...]}``, rewritten after every item, so a batch that was killed still says how far it
got. ``status`` is ``succeeded``, ``failed`` (``error`` holds the one-line reason) or ``kept`` (a
retried batch found the item finished with the same spec and run token).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

REPORT_FILE = "batch.json"
DONE_FILE = "batch-item.json"  # beside an item's manifest: the spec (and run token) it finished with
STATUSES = ("succeeded", "failed", "kept")
# In DONE_FILE: ``spec_sha256`` = spec_digest(run token, the spec file as the batch read it). On
# an object store the run task adds ``store_spec_sha256`` = spec_digest(run token, the spec as
# stored): the local file names this worker's scratch paths, the stored one is the same everywhere.


def spec_digest(run_token: str, spec_text: str) -> str:
    """What a finished item's done marker holds: its spec text under this run token."""
    return hashlib.sha256((run_token + "\0" + spec_text).encode()).hexdigest()


def read_report(out_dir: str | Path) -> dict[str, dict]:
    """A batch's report as ``{out_dir: row}`` (empty when the batch never wrote one)."""
    try:
        rows = json.loads((Path(out_dir) / REPORT_FILE).read_text())["items"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {r["out_dir"]: r for r in rows if isinstance(r, dict) and r.get("status") in STATUSES}
