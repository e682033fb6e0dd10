"""Collects what a stage did and writes ``manifest.json`` through :mod:`contract.manifest`."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from contract import jsonsafe
from contract.manifest import (
    ArtifactKind,
    ProducedModel,
    StageInput,
    StageManifest,
    TableOutput,
    make_artifact,
    sha256_path,
    write_manifest,
)
from gpu_trainer import repro


def _clean(v: Any) -> Any:
    """JSON-safe values: numpy scalars to Python, NaN/inf to None (JSON has no NaN)."""
    return jsonsafe.to_json(v)


class StageRecord:
    def __init__(self, stage: str, spec, out_dir: str | os.PathLike[str]):
        self.stage, self.spec = stage, spec
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.started = datetime.now(timezone.utc)
        self.t0 = time.perf_counter()
        self.inputs: list[StageInput] = []
        self.artifacts = []
        self.tables: list[TableOutput] = []
        self.metrics: dict[str, Any] = {}
        self.details: dict[str, Any] = {}

    def input(self, role: str, uri: str) -> None:
        p = Path(uri)
        self.inputs.append(StageInput(role=role, uri=uri, sha256=sha256_path(p) if p.exists() else None))

    def artifact(self, path: str, name: str, kind: ArtifactKind) -> None:
        self.artifacts.append(make_artifact(self.out, path, name=name, kind=kind))

    def table(self, kind: str, rows: list[dict], filename: str | None = None) -> None:
        """Write per-sample rows to Parquet (temp name + rename) and list it in the manifest."""
        import pandas as pd

        filename = filename or f"{kind}.parquet"
        target = self.out / filename
        tmp = target.with_name(f".{target.name}.tmp")
        pd.DataFrame(rows).to_parquet(tmp, index=False)
        os.replace(tmp, target)
        self.tables.append(TableOutput(kind=kind, path=filename, rows=len(rows)))
        self.artifact(filename, kind, "table")

    def finish(self, device: str, versions: dict[str, str], *, model: ProducedModel | None = None,
               subject_uri: str | None = None) -> StageManifest:
        finished = datetime.now(timezone.utc)
        manifest = StageManifest(
            stage=self.stage,
            subject_uri=subject_uri,
            inputs=self.inputs,
            params=self.spec.model_dump(mode="json"),
            metrics=_clean(self.metrics),
            details=_clean(self.details),
            artifacts=self.artifacts,
            model=model,
            tables=self.tables,
            timings={"started_at": self.started, "finished_at": finished, "seconds": time.perf_counter() - self.t0},
            versions=versions,
            numerics=repro.settings(),
            device=device,
        )
        write_manifest(self.out, manifest)
        return manifest
