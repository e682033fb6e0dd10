"""The nightly evaluation's node functions (no Airflow): what to evaluate, then group comparisons."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from sqlalchemy.engine import Engine

from vigil.lifecycle.specs import NIGHTLY_STAGES, nightly_item, nightly_stage
from vigil.registry.versions import Registry, RunRef

log = logging.getLogger(__name__)


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

