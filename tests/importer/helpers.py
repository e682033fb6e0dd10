"""Small builders shared by the importer tests (real files, real hashes)."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa


def write(path: Path, content: str | bytes | dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, dict):
        content = json.dumps(content, indent=2)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def counts(engine) -> dict[str, int]:
    with engine.connect() as c:
        return {t: c.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() for t in ("models", "model_versions", "runs")}


def nothing_written(engine, data_dir: Path) -> bool:
    """No registry row and no artifact copy."""
    return counts(engine) == {"models": 0, "model_versions": 0, "runs": 0} and not (data_dir / "artifacts" / "imports").exists()
