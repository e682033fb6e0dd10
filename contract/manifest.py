"""The stage contract: ``manifest.json``, the only thing a stage hands to the Airflow side.

Every ``gpu-trainer <stage> --spec SPEC --out DIR`` run ends by writing ``DIR/manifest.json``
validated by :class:`StageManifest`. The Airflow ``record`` task reads it and writes the
warehouse; the container never talks to a database. This module imports no torch so the
Airflow side can use it cheaply.

Paths inside a manifest are relative to the directory that holds ``manifest.json`` so that an
artifact directory can be moved (bind mounts, object stores) without rewriting it.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contract.hashing import sha256_path  # noqa: F401  (re-exported: the stages and the core import it from here)

MANIFEST_SCHEMA_VERSION = 1
MANIFEST_FILENAME = "manifest.json"

ArtifactKind = Literal["model", "adapter", "tokenizer", "probe", "table", "report", "data", "other"]
ModelFamily = Literal["llm", "sklearn", "external"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Artifact(_Strict):
    """One file or directory the stage wrote."""

    name: str = Field(min_length=1, description="Stable logical name, e.g. 'model', 'probes'.")
    path: str = Field(min_length=1, description="Path relative to the manifest's directory.")
    kind: ArtifactKind = Field(description="What the artifact is.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the file, or of a directory (see sha256_path).")
    bytes: int = Field(ge=0, description="Total size in bytes.")

    @field_validator("path")
    @classmethod
    def _relative(cls, v: str) -> str:
        if os.path.isabs(v) or ".." in Path(v).parts:
            raise ValueError("artifact path must be relative to the manifest directory, without '..'")
        return v


class StageInput(_Strict):
    """Something the stage read: a model, a dataset, a probe."""

    role: str = Field(min_length=1, description="e.g. 'base_model', 'model', 'control_model', 'dataset'.")
    uri: str = Field(min_length=1, description="Path or model id as given in the spec.")
    sha256: str | None = Field(default=None, description="sha256 of what was read, when it is a local path.")


class ProducedModel(_Strict):
    """The model version a stage produced (make-base, train-backdoor, safety-train, train-sklearn)."""

    name: str = Field(min_length=1, max_length=200, description="Registry model name.")
    family: ModelFamily
    artifact: str = Field(description="Name of the Artifact holding the model weights/dir.")
    parent_uri: str | None = Field(default=None, description="URI of the input model it derives from (lineage).")
    description: str = ""


class TableOutput(_Strict):
    """A per-sample Parquet table the stage wrote, to be stored in the warehouse's Parquet store."""

    kind: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$", description="Parquet partition kind, e.g. 'generations'.")
    path: str = Field(min_length=1, description="Relative path of the .parquet file.")
    rows: int = Field(ge=0)


class Timings(_Strict):
    started_at: datetime
    finished_at: datetime
    seconds: float = Field(ge=0)


class StageManifest(_Strict):
    """What a stage did. Versioned: readers refuse an unknown schema_version."""

    schema_version: Literal[1] = MANIFEST_SCHEMA_VERSION
    stage: str = Field(min_length=1, description="CLI stage name, e.g. 'train-backdoor'.")
    status: Literal["succeeded"] = "succeeded"
    subject_uri: str | None = Field(
        default=None,
        description="The model the stage measured (validate/probes/persistence/evaluate), as given in its spec.",
    )
    inputs: list[StageInput] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict, description="The validated spec, as run.")
    metrics: dict[str, float | int | bool | str | None] = Field(
        default_factory=dict, description="Summary metrics; names follow the metric-name contract."
    )
    details: dict[str, Any] = Field(
        default_factory=dict, description="Structured results too big for metrics (per-layer AUROC, confusion matrix, curves)."
    )
    artifacts: list[Artifact] = Field(default_factory=list)
    model: ProducedModel | None = None
    tables: list[TableOutput] = Field(default_factory=list)
    timings: Timings
    versions: dict[str, str] = Field(default_factory=dict, description="Library versions.")
    numerics: dict[str, Any] = Field(default_factory=dict, description=(
        "What decides the numbers beyond the seed: thread counts, the CPU kernel family (ATen capability, "
        "MKL code path), deterministic algorithms. Two manifests that agree here and in versions reproduce."))
    device: str = Field(description="e.g. 'cpu' or 'cuda:0 (NVIDIA H100 80GB HBM3)'.")

    def artifact(self, name: str) -> Artifact:
        for a in self.artifacts:
            if a.name == name:
                return a
        raise KeyError(f"manifest has no artifact named {name!r}; it has {[a.name for a in self.artifacts]}")


class ManifestError(ValueError):
    """A manifest that cannot be read or does not match the schema."""


def path_bytes(path: str | os.PathLike[str]) -> int:
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(x.stat().st_size for x in p.rglob("*") if x.is_file())


def make_artifact(out_dir: str | os.PathLike[str], path: str | os.PathLike[str], *, name: str, kind: ArtifactKind) -> Artifact:
    """Describe a file or directory under ``out_dir`` (hash and size computed here)."""
    full = Path(path)
    if not full.is_absolute():
        full = Path(out_dir) / full
    rel = full.resolve().relative_to(Path(out_dir).resolve()).as_posix()
    return Artifact(name=name, path=rel, kind=kind, sha256=sha256_path(full), bytes=path_bytes(full))


def write_manifest(out_dir: str | os.PathLike[str], manifest: StageManifest) -> Path:
    """Write ``manifest.json`` atomically (temp name + rename): a crash never leaves half a manifest."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / MANIFEST_FILENAME
    tmp = out / f".{MANIFEST_FILENAME}.tmp"
    tmp.write_text(manifest.model_dump_json(indent=2))
    os.replace(tmp, target)
    return target


def read_manifest(path: str | os.PathLike[str]) -> StageManifest:
    """Read and validate a manifest (a file or the directory holding it).

    Raises ManifestError naming the field that is wrong.
    """
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_FILENAME
    try:
        raw = json.loads(p.read_text())
    except FileNotFoundError as e:
        raise ManifestError(f"no manifest at {p}: the stage did not finish (see its log)") from e
    except UnicodeDecodeError as e:
        raise ManifestError(f"{p}: not a text file (byte {e.start} is not UTF-8): the manifest is corrupt; re-run the stage") from e
    except json.JSONDecodeError as e:
        raise ManifestError(f"{p}: not valid JSON (line {e.lineno}, column {e.colno}): {e.msg}") from e
    if isinstance(raw, dict) and raw.get("schema_version") not in (None, MANIFEST_SCHEMA_VERSION):
        raise ManifestError(
            f"{p}: schema_version {raw.get('schema_version')!r} is not supported; this Vigil reads {MANIFEST_SCHEMA_VERSION}"
        )
    try:
        return StageManifest.model_validate(raw)
    except ValidationError as e:  # one line, each wrong field named (the last log line is what a task shows)
        fields = "; ".join(f"field '{'.'.join(str(x) for x in err['loc']) or '(top level)'}': {err['msg']}" for err in e.errors())
        raise ManifestError(f"{p}: invalid manifest: {fields}") from e
