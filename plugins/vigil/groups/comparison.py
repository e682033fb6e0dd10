"""The nightly champion-vs-challenger comparison of every model group: paired on the same
evaluation rows where both models have per-sample outcomes for the date, else on summary
metrics; one ``comparisons`` row per (group, date, challenger), and ``auto_promote`` where the
group's policy says so (at most once per group and date).
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vigil.groups.membership import Groups
from vigil.groups.records import Group, GroupError, Member
from vigil.registry.versions import Registry, RunRef

log = logging.getLogger(__name__)


def compare_groups(engine: Engine, logical_date: date, run: RunRef) -> list[dict[str, Any]]:
    """Nightly: every live group's champion against each challenger on the same evaluation data
    for ``logical_date``; upserts one ``comparisons`` row per (group, date, challenger) and applies
    ``auto_promote`` where the group's policy says so. Returns one summary dict per comparison."""
    if isinstance(logical_date, datetime):
        logical_date = logical_date.date()
    return _compare_all(Groups(engine), logical_date, run)



def run_group_comparisons(engine: Engine, run: RunRef) -> list[dict[str, Any]]:
    """Champion/challenger comparisons of every model group on this date's evaluations."""
    return compare_groups(engine, run.day, run)


# --------------------------------------------------------------------------- nightly comparison
def _per_sample(store, logical_date: date, kind: str, version_id: int, stages: tuple[str, ...]):
    """The per-sample rows of one version for one date, from the preferred stage that has them."""
    import pandas as pd

    df = store.read(kind, logical_date)
    if df.empty or "model_version_id" not in df:
        return pd.DataFrame()
    df = df[df["model_version_id"] == version_id]
    if "stage" in df:
        for st in stages:
            sub = df[df["stage"] == st]
            if not sub.empty:
                return sub
    return df


def _paired_inputs(group: Group, champ: Member, chall: Member, store, logical_date: date):
    """(y_true, champion Outputs, challenger Outputs, description) on shared rows, or None."""

    from evaluation.comparison import Outputs

    if champ.family == "sklearn":
        a = _per_sample(store, logical_date, "predictions", champ.version_id, ("evaluate-sklearn", "train-sklearn"))
        b = _per_sample(store, logical_date, "predictions", chall.version_id, ("evaluate-sklearn", "train-sklearn"))
        keys = ["dataset_sha256", "row_id"]
        if a.empty or b.empty:
            return None
        m = a.merge(b, on=keys, suffixes=("_a", "_b"))
        if m.empty:
            return None
        if not (m["y_true_a"] == m["y_true_b"]).all():
            return None  # different label definitions (positive class): not comparable row by row
        y = m["y_true_a"].to_numpy()
        oa = Outputs(m["y_pred_a"].to_numpy(), m["score_a"].to_numpy() if "score_a" in m else None)
        ob = Outputs(m["y_pred_b"].to_numpy(), m["score_b"].to_numpy() if "score_b" in m else None)
        return y, oa, ob, f"{len(m)} shared evaluation rows (predictions tables, dataset {m['dataset_sha256'].iloc[0][:12]})"
    # LLM: the same prompts with and without the trigger; y_true = triggered, y_pred = activated
    stages = ("evaluate", "validate-backdoor", "test-persistence")
    a = _per_sample(store, logical_date, "generations", champ.version_id, stages)
    b = _per_sample(store, logical_date, "generations", chall.version_id, stages)
    if a.empty or b.empty or not {"condition", "prompt", "activated"} <= set(a.columns) & set(b.columns):
        return None
    # an evaluate run may also hold a control model's generations: keep the measured model's
    a, b = (d[d["model_tag"] == "subject"] if "model_tag" in d else d for d in (a, b))
    a = a.drop_duplicates(["condition", "prompt"])
    b = b.drop_duplicates(["condition", "prompt"])
    m = a.merge(b, on=["condition", "prompt"], suffixes=("_a", "_b"))
    if m.empty:
        return None
    y = (m["condition"] == "triggered").to_numpy().astype(int)
    return (y, Outputs(m["activated_a"].astype(int).to_numpy()), Outputs(m["activated_b"].astype(int).to_numpy()),
            f"{len(m)} shared prompts (generations tables)")


def _summary_metrics(reg: Registry, version_id: int, logical_date: date) -> dict[str, Any]:
    """Latest evaluation metrics on or before the date (all suites merged, newest wins)."""
    merged: dict[str, Any] = {}
    for e in reg.evaluations(version_id):
        if e["status"] == "succeeded" and e["logical_date"] <= logical_date:
            merged.update(e["metrics"] or {})
    if not merged:
        merged = dict(reg.get_by_id(version_id).metrics or {})
    return merged


def _compare_all(groups: Groups, logical_date: date, run: RunRef, *, store=None) -> list[dict[str, Any]]:
    from evaluation.comparison import ComparisonError, Policy, compare_paired, compare_summaries
    from vigil.storage.parquet_store import default_store

    store = store or default_store()
    reg = groups.registry
    summary: list[dict[str, Any]] = []
    with groups.engine.begin() as c:
        run_pk = reg.upsert_run(c, run)
    for g in groups.list():
        champ = g.champion
        if champ is None or not g.challengers:
            summary.append({"group": g.name, "status": "skipped",
                            "reason": "no champion" if champ is None else "no challengers"})
            continue
        try:
            policy = Policy(g.primary_metric, g.direction, g.guardrails, alpha=g.alpha, min_effect=g.min_effect)
        except ComparisonError as e:  # a group stored before the metric catalogue refused its policy
            log.warning("group %s not compared: %s", g.name, e)
            summary.append({"group": g.name, "status": "refused", "reason": str(e)})
            continue
        results = []
        for ch in g.challengers:
            reasons_pre: list[str] = []
            result = None
            paired = _paired_inputs(g, champ, ch, store, logical_date)
            if paired is not None:
                y, oa, ob, desc = paired
                try:
                    result = compare_paired(y, oa, ob, policy)
                    result.reasons.append(f"paired on {desc}")
                except ComparisonError as e:
                    reasons_pre.append(f"paired comparison impossible ({e}); fell back to summary metrics")
            else:
                reasons_pre.append("no per-sample outcomes of both models on shared rows for this date")
            if result is None:
                result = compare_summaries(_summary_metrics(reg, champ.version_id, logical_date),
                                           _summary_metrics(reg, ch.version_id, logical_date), policy)
            result.reasons[:0] = reasons_pre
            with groups.engine.begin() as c:
                c.execute(
                    sa.text(
                        """INSERT INTO comparisons (group_id, logical_date, champion_version_id, challenger_version_id,
                             primary_metric, metrics, decision, reasons, run_id)
                           VALUES (:g, :d, :a, :b, :pm, CAST(:m AS jsonb), :dec, CAST(:r AS jsonb), :run)
                           ON CONFLICT (group_id, logical_date, challenger_version_id) DO UPDATE SET
                             champion_version_id = EXCLUDED.champion_version_id, primary_metric = EXCLUDED.primary_metric,
                             metrics = EXCLUDED.metrics, decision = EXCLUDED.decision, reasons = EXCLUDED.reasons,
                             run_id = EXCLUDED.run_id, created_at = now()"""
                    ),
                    {"g": g.id, "d": logical_date, "a": champ.version_id, "b": ch.version_id, "pm": g.primary_metric,
                     "m": json.dumps(result.to_json()), "dec": result.decision, "r": json.dumps(result.reasons),
                     "run": run_pk},
                )
            pm = result.metrics.get(g.primary_metric)
            row = {"group": g.name, "champion": champ.ref, "challenger": ch.ref, "challenger_version_id": ch.version_id,
                   "decision": result.decision, "paired": result.paired, "primary_metric": g.primary_metric,
                   "difference": pm.diff.get("value") if pm else None, "p_value": pm.p_value if pm else None,
                   "improvement": pm.improvement if pm else None, "reasons": result.reasons, "promoted": False,
                   "metrics": result.to_json()}
            results.append(row)
        summary.extend(results)
        if g.auto_promote:
            _auto_promote(groups, g, results, logical_date, run)
    return summary


def _auto_promote(groups: Groups, g: Group, results: list[dict[str, Any]], logical_date: date, run: RunRef) -> None:
    """Promote the best 'promote' challenger, at most once per group and logical date (re-runs
    of the same night do not cascade promotions)."""
    winners = [r for r in results if r["decision"] == "promote"]
    if not winners:
        return
    with groups.engine.connect() as c:
        done = c.execute(sa.text("""SELECT 1 FROM group_events WHERE group_id = :g AND event_type = 'auto_promote'
                                    AND details->>'logical_date' = :d"""),
                         {"g": g.id, "d": logical_date.isoformat()}).scalar()
    if done:
        log.info("group %r: already auto-promoted for %s; not again", g.name, logical_date)
        return
    best = max(winners, key=lambda r: r["improvement"] or 0)
    try:
        groups.promote(g.name, best["challenger"], reason=f"auto_promote: {best['reasons'][0]}",
                       actor=f"airflow:{run.dag_id}/{run.run_id}", event_type="auto_promote",
                       metrics_snapshot={"comparison": best["metrics"], "reasons": best["reasons"]},
                       details={"logical_date": logical_date.isoformat()})
        best["promoted"] = True
    except GroupError as e:
        log.warning("group %r: auto-promotion of %s refused: %s", g.name, best["challenger"], e)
