"""The nightly evaluation's node functions (no Airflow): what to evaluate, then group comparisons."""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from contract.errors import UserError
from vigil.lifecycle.specs import MAX_CHUNK_SIZE, NIGHTLY_STAGES, FormError, nightly_item, nightly_stage
from vigil.registry.versions import Registry, RunRef

log = logging.getLogger(__name__)


# What nightly runs on every LLM besides its evaluation (each its own suite, a form switch each):
# the blind scan, and the cheap analyses (trigger sensitivity, honeypots; vigil.lifecycle.analyze).
LLM_SIDE_STAGES = ("scan", "analyze")


def _latest_detail(reg: Registry, versions: list, suite: str, key: str) -> str | None:
    """The newest ``details[key]`` of ``suite`` over ``versions`` (nearest first)."""
    for v in versions:
        evs = reg.evaluations(v.id, suite=suite)
        for e in reversed(evs):
            if e["details"].get(key):
                return e["details"][key]
    return None


def _newest_probes(reg: Registry, lineage: list) -> str | None:
    """The newest train-probes output recorded on the version (the last of its lineage) or its
    nearest ancestor that has one."""
    return _latest_detail(reg, list(reversed(lineage)), "train-probes", "manifest_dir")


def versions_to_evaluate(engine: Engine, day: date) -> list[dict[str, Any]]:
    """One item per version registered as of ``day``: artifact, trigger of its lineage, the
    newest probes trained on it or an ancestor, and (scikit-learn) the dataset it was trained on."""
    reg = Registry(engine)
    items = []
    for v in reg.list_versions(as_of=day):
        lineage = reg.lineage(v.ref)
        probes = _newest_probes(reg, lineage) if v.family == "llm" else None
        dataset = None
        if v.family == "external":
            log.info("skipping %s: metadata-only import, nothing to run", v.ref)
            continue
        if v.scorable is False:
            log.info("skipping %s: imported without what it needs to run (see its mapping report)", v.ref)
            continue
        if v.family == "sklearn":
            dataset = (v.params or {}).get("dataset") or _latest_detail(reg, [v], "evaluate-sklearn", "dataset")
            if not dataset:
                log.info("skipping %s: no evaluation dataset attached (attach one to evaluate it nightly)", v.ref)
                continue
        items.append(nightly_item(v, lineage, probes, dataset))
    log.info("%d versions registered as of %s", len(items), day)
    return items


def by_stage(items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The nightly items split by the stage that evaluates them (every nightly stage a key, maybe
    with no items): the DAG runs each list with that stage's own resources, so a scikit-learn
    evaluation never asks for a GPU."""
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in NIGHTLY_STAGES}
    for item in items:
        out[nightly_stage(item)].append(item)
    return out


def integrity_problem(engine: Engine, item: dict[str, Any], run: RunRef) -> str | None:
    """Re-hash a version's artifact before its nightly evaluation. On a mismatch (or a missing
    artifact) the night records a failed evaluation naming the problem, keyed like any other
    evaluation (a re-run replaces it), and returns the problem so the caller skips this version
    and the others go on; None when the artifact is what was registered."""
    reg = Registry(engine)
    check = reg.verify_hashes(item["ref"])
    if check["ok"]:
        return None
    problem = f"{item['ref']}: {check['problem']} ({check['artifact_uri']})"
    reg.record_evaluation(item["version_id"], suite=nightly_stage(item), run=run, metrics={}, status="failed",
                          details={k: check.get(k) for k in ("problem", "artifact_uri", "expected", "actual")})
    log.warning("not evaluating %s", problem)
    return problem


def llm_context(engine: Engine, version_id: int) -> dict[str, Any]:
    """What running an LLM version needs from the registry: its lineage's trigger, response and
    backdoor type, and the newest probes trained on it or an ancestor (as nightly evaluates it)."""
    reg = Registry(engine)
    v = reg.get_by_id(version_id)
    lineage = reg.lineage(v.ref)
    return nightly_item(v, lineage, _newest_probes(reg, lineage), None)



# ------------------------------------------------------------------ chunks: many versions, one process
def chunked(items: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """``items`` in runs of at most ``size`` (the DAG maps over these): ``[{"index", "items"}]``."""
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_CHUNK_SIZE:
        raise FormError(f"form field 'chunk_size': {size!r} must be a whole number between 1 and {MAX_CHUNK_SIZE} "
                        "(versions evaluated by one process)")
    return [{"index": i // size, "items": items[i:i + size]} for i in range(0, len(items), size)]


def _failed(reg: Registry, item: dict[str, Any], suite: str, run: RunRef, error: str, **details: Any) -> dict[str, Any]:
    """File ``item``'s evaluation of tonight as failed, naming why (keyed like any evaluation:
    a re-run replaces it)."""
    reg.record_evaluation(item["version_id"], suite=suite, run=run, metrics={}, status="failed",
                          details={"error": error, **details})
    log.warning("%s: %s failed: %s", item["ref"], suite, error)
    return {"ref": item["ref"], "version_id": item["version_id"], "status": "failed", "error": error}


def prepare_chunk(engine: Engine, stage: str, chunk: dict[str, Any], params: dict[str, Any], run: RunRef,
                  folder: Path, run_token: str) -> dict[str, Any]:
    """Write the spec of every version of ``chunk`` and the batch spec that runs them.

    Per version, as a single evaluation would: the artifact is re-hashed first (a tampered or lost
    one is filed as a failed evaluation, see :func:`integrity_problem`) and the spec is validated
    by the stage's own schema (a refused one is filed as failed, naming the field). Those versions
    leave the batch; the rest run. ``batch_spec`` is None when none is left."""
    from vigil.lifecycle.specs import safe_segment, write_spec
    from vigil.lifecycle.stage_io import publish_file

    reg = Registry(engine)
    sub = stage if stage in LLM_SIDE_STAGES else "evaluate"
    entries, outcomes = [], []
    for item in chunk["items"]:
        problem = integrity_problem(engine, item, run) if stage not in LLM_SIDE_STAGES else _integrity_only(reg, item)
        if problem:
            outcomes.append({"ref": item["ref"], "version_id": item["version_id"], "status": "skipped",
                             "error": problem})
            continue
        try:
            chosen, body = _nightly_spec(stage, item, params)
            if chosen != stage:  # by_stage() and nightly_spec() disagree: a bug, not data
                raise ValueError(f"{item['ref']} is evaluated by {chosen}, not {stage}")
            out = folder / sub / f"{safe_segment(item['ref'])}-{item['version_id']}"
            written = write_spec(out, stage, body)
        except UserError as e:
            outcomes.append(_failed(reg, item, stage, run, str(e)))
            continue
        entries.append({"key": item["ref"], "spec_path": written["spec_path"], "out_dir": written["out_dir"],
                        "item": item})
    batch_spec = None
    batch_out = folder / sub / f"batch-{chunk['index']:04d}"
    if entries:
        batch_out.mkdir(parents=True, exist_ok=True)
        batch_spec = str(batch_out / "batch-spec.json")
        Path(batch_spec).write_text(json.dumps({
            "stage": stage, "run_token": run_token,
            "items": [{k: e[k] for k in ("key", "spec_path", "out_dir")} for e in entries]}, indent=2))
        batch_spec = publish_file(batch_spec)  # a remote store: uploaded, its URL (locally: the path)
    return {"stage": stage, "batch_spec": batch_spec,
            "batch_out": batch_spec.rsplit("/", 1)[0] if batch_spec and "://" in batch_spec else str(batch_out),
            "entries": [{"out_dir": e["out_dir"], "item": e["item"]} for e in entries], "outcomes": outcomes}


def _nightly_spec(stage: str, item: dict[str, Any], params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(the stage that runs ``item`` tonight, its spec body) for ``stage``'s task group."""
    from vigil.lifecycle.analyze import nightly_analyze_spec
    from vigil.lifecycle.specs import nightly_scan_spec, nightly_spec

    if stage == "scan":
        return "scan", nightly_scan_spec(item, params)
    if stage == "analyze":
        return "analyze", nightly_analyze_spec(item, params)
    return nightly_spec(item, params)


def _integrity_only(reg: Registry, item: dict[str, Any]) -> str | None:
    """The scan's and the analyses' check: an artifact that is not what was registered is not run
    (the evaluation of the same night files the failure; filing it twice would overwrite nothing new)."""
    check = reg.verify_hashes(item["ref"])
    return None if check["ok"] else f"{item['ref']}: {check['problem']} ({check['artifact_uri']})"


def record_chunk(engine: Engine, prepared: dict[str, Any], run: RunRef, *, store: Any) -> list[dict[str, Any]]:
    """File every version of a prepared chunk: its manifest when the batch finished it, else a
    failed evaluation with the batch's error line (or, when the batch never reached it, saying so).
    One row per version, with its seconds; the caller decides what a failure means for the task."""
    from contract.batch import REPORT_FILE, STATUSES
    from vigil.lifecycle.stage_io import read_json
    from vigil.registry.ingest import record_stage
    from vigil.registry.versions import RegistryError

    reg = Registry(engine)
    report = {}
    if prepared.get("batch_spec"):  # contract.batch.read_report's reading, from a folder or the object store
        doc = read_json(prepared["batch_out"], REPORT_FILE)
        items = doc.get("items") if isinstance(doc, dict) else None
        report = {r["out_dir"]: r for r in (items if isinstance(items, list) else [])
                  if isinstance(r, dict) and r.get("status") in STATUSES}
    rows = list(prepared["outcomes"])
    for entry in prepared["entries"]:
        item, row = entry["item"], report.get(entry["out_dir"])
        if row is None:
            rows.append(_failed(reg, item, prepared["stage"], run, "the batch ended before reaching this version"))
            continue
        if row["status"] == "failed":
            rows.append(_failed(reg, item, prepared["stage"], run, row["error"] or "failed", attempts=row["attempts"]))
            continue
        try:
            rec = record_stage(engine, entry["out_dir"], run, store=store, subject_version_id=item["version_id"])
        except RegistryError as e:  # its outputs are incomplete: this version's problem, not the chunk's
            rows.append(_failed(reg, item, prepared["stage"], run, str(e)))
            continue
        rows.append({"ref": item["ref"], "version_id": item["version_id"], "status": "succeeded",
                     "seconds": row["seconds"], "kept": row["status"] == "kept",
                     "evaluation_id": rec.evaluation_id})
    return rows
