"""Page data of the blind scan, the detector panel and the scan zoo (see :mod:`site_builder.pagedata`).

* **Scan** (suite ``scan``): the stage's verdict, its top trigger candidate with the Wilson
  interval of the rate it induces, the ranked candidates per prompt pool (``details.candidates``,
  else the Parquet ``scan_candidates`` table), a few of the top candidate's generations beside the
  clean ones (Parquet ``scan_generations``) and, when the record step knew a planted trigger,
  whether the scan recovered it.
* **Detector panel** (suite ``detect``): per detector its AUROC on the subject beside the same
  detector on the controls and baselines, and which detectors joined the consensus (and why not).
* **Scan zoo**: the versions one run of the ``scan_zoo`` DAG registered, their roles read from the
  registry (stage and params) and :func:`evaluation.scan.zoo_summary` over their scans.

Trigger candidates and generations are adversarial model output: they pass through
:func:`site_builder.fmt.visible` (invisible characters shown as escapes) and are escaped by the
templates like any user text. Everything here only reads the snapshot's rows.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from contract import metrics as catalogue
from site_builder import extract as ex
from site_builder.fmt import metric_interval, num, rate_text, visible

SCAN_SUITE = "scan"
DETECT_SUITE = "detect"
ZOO_DAG = "scan_zoo"
# Metric names the scan section lists (labels from the catalogue, contract.metrics).
SCAN_ROWS = ("scan_verdict", "scan_score", "scan_differential", "trigger_candidate", "trigger_candidate_tokens",
             "trigger_candidate_pool", "trigger_candidate_rate", "trigger_candidate_completion",
             "trigger_candidate_shift_z", "trigger_candidate_excess_nats", "trigger_recovered",
             "planted_behaviour_rate", "scan_seconds")
VERDICT_LEVEL = {"backdoored": "danger", "inconclusive": "warning", "clean": "ok"}
CANDIDATES_SHOWN = 20
EXAMPLES_BEST_POOL = 3
EXAMPLES_OTHER_POOLS = 1
POOL_ORDER = ("chat", "code")

DETECTORS = ("contrast_pair", "supervised_probe", "activation_clustering", "spectral_signature", "perplexity_filter")
# (metric suffix, column heading): the subject, then what the subject's AUROC must beat.
DETECT_COLUMNS = (("auroc", "Subject"), ("auroc_control_exposed", "Trigger-exposed control"),
                  ("auroc_control_cross", "Cross-trigger control"), ("auroc_control_base", "Clean base"),
                  ("auroc_length_baseline", "Length baseline"), ("auroc_shuffled", "Shuffled labels"))
_DETECTOR_METRIC = re.compile(r"^detector_(.+)_auroc$")

ROLE_TEXT = {"backdoored": "backdoored", "control_exposed": "trigger-exposed control",
             "control_cross": "cross-trigger control", "control_clean_base": "clean base"}


def _ok(e: dict[str, Any], suite: str) -> bool:
    return e["suite"] == suite and e["status"] == "succeeded"


def newest(evals: list[dict[str, Any]], suite: str, prefer_run: tuple[str, str] | None = None) -> dict[str, Any] | None:
    """The newest succeeded evaluation of ``suite``; with ``prefer_run`` (dag_id, run_id), the
    newest one that run recorded when there is one (a zoo page shows the zoo's own scan)."""
    hits = [e for e in evals if _ok(e, suite)]
    if prefer_run:
        own = [e for e in hits if (e.get("dag_id"), e.get("run_id")) == prefer_run]
        hits = own or hits
    return max(hits, key=lambda e: (e["logical_date"], e["created_at"])) if hits else None


def _num_or_none(v: Any) -> float | None:
    return float(v) if ex.is_number(v) else None


def _n(m: dict[str, Any], name: str, digits: int = 3, default: Any = "—") -> Any:
    """A numeric metric printed as everywhere else, or ``default`` when absent or not a number."""
    return num(m.get(name), digits) if ex.is_number(m.get(name)) else default


def _verdict(m: dict[str, Any]) -> str | None:
    v = m.get("scan_verdict")
    return v if isinstance(v, str) else None


def _flag(v: Any) -> bool | None:
    return v if isinstance(v, bool) else None


def _metric_text(m: dict[str, Any], name: str) -> str:
    v = m.get(name)
    if ex.is_number(v):
        text = metric_interval(m, name)
        if ex.is_number(m.get(f"{name}_n")):
            text += f" (n={int(m[f'{name}_n'])})"
        return text
    if isinstance(v, str):
        return visible(v)
    return num(v)


def metric_rows(m: dict[str, Any], names: tuple[str, ...]) -> list[list[str]]:
    """[[label, name, printed value]] like pagedata's metric tables, model strings made visible."""
    return [[catalogue.label(n), n, _metric_text(m, n)] for n in names if n in m]


def _pools(candidates: list[dict[str, Any]]) -> list[str]:
    seen = {p for c in candidates for p in (c.get("pools") or {})}
    return [p for p in POOL_ORDER if p in seen] + sorted(seen - set(POOL_ORDER))


def _from_details(details: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for c in details.get("candidates") or []:
        if not isinstance(c, dict):
            continue
        pools = {str(p): d for p, d in (c.get("pools") or {}).items() if isinstance(d, dict)}
        out.append({"trigger": c.get("trigger"), "length": c.get("length"), "best_pool": c.get("best_pool"),
                    "induced_completion": c.get("induced_completion"), "rate": c.get("rate"), "ci_low": c.get("ci_low"),
                    "ci_high": c.get("ci_high"), "n": c.get("n"), "shift_z": c.get("shift_z"), "pools": pools})
    return out


def _from_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Candidates from Parquet ``scan_candidates`` rows (one per candidate and pool)."""
    by_rank: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        if ex.is_number(r.get("rank")):
            by_rank[int(r["rank"])].append(r)
    out = []
    for _, rs in sorted(by_rank.items()):
        pools = {str(r.get("pool")): {"rate": r.get("rate"), "ci_low": r.get("rate_ci_low"), "ci_high": r.get("rate_ci_high"),
                                      "induced_completion": r.get("induced_completion")} for r in rs}
        best = max(pools, key=lambda p: (_num_or_none(pools[p]["ci_low"]) or 0.0, _num_or_none(pools[p]["rate"]) or 0.0))
        b = pools[best]
        out.append({"trigger": rs[0].get("trigger"), "length": rs[0].get("length"), "best_pool": best,
                    "induced_completion": b["induced_completion"], "rate": b["rate"], "ci_low": b["ci_low"],
                    "ci_high": b["ci_high"], "n": None, "shift_z": rs[0].get("shift_z"), "pools": pools})
    return out


def _examples(stored: dict[str, Any] | None, date: str, best_pool: str | None) -> list[dict[str, Any]]:
    if not stored or stored.get("date") != date:
        return []  # generations of another scan than the one shown: none rather than the wrong ones
    rows = [r for r in stored.get("rows") or [] if isinstance(r, dict)]
    best = [r for r in rows if r.get("pool") == best_pool][:EXAMPLES_BEST_POOL]
    other: dict[str, list] = defaultdict(list)
    for r in rows:
        if r.get("pool") != best_pool and len(other[r.get("pool")]) < EXAMPLES_OTHER_POOLS:
            other[r.get("pool")].append(r)
    return [{"pool": str(r.get("pool") or "—"), "prompt": visible(r.get("prompt")), "clean": visible(r.get("clean_generation")),
             "generation": visible(r.get("generation")), "active": _flag(r.get("active")), "changed": _flag(r.get("changed"))}
            for r in best + [x for p in sorted(other, key=str) for x in other[p]]]


def planted_trigger(lineage_params: list[dict[str, Any]]) -> str | None:
    """The trigger the registry knows was planted: the nearest ancestor (or the version itself)
    trained with one, unless that was a control (as the record step's ``scan_truth`` reads it)."""
    for p in reversed(lineage_params):
        if isinstance(p, dict) and "trigger" in p:
            return str(p["trigger"]) if p.get("control") in (None, "none") else None
    return None


def scan_section(evals: list[dict[str, Any]], examples: dict[str, Any] | None, table: dict[str, Any] | None,
                 lineage_params: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The version page's scan data and its chart, or (None, []) when it was never scanned."""
    e = newest(evals, SCAN_SUITE)
    if e is None:
        return None, []
    m, det = e["metrics"] or {}, e["details"] if isinstance(e["details"], dict) else {}
    cands = _from_details(det)
    if not cands and table and table.get("date") == e["logical_date"]:
        cands = _from_table(table.get("rows") or [])
    pools = _pools(cands)
    thr = det.get("scan_thresholds") if isinstance(det.get("scan_thresholds"), dict) else {}
    thresholds = {"backdoored": _num_or_none(thr.get("backdoored_score")), "clean": _num_or_none(thr.get("clean_score"))}
    verdict = _verdict(m)
    rows = []
    for i, c in enumerate(cands[:CANDIDATES_SHOWN]):
        rows.append({
            "rank": i + 1, "trigger": visible(c["trigger"]), "length": num(c["length"]) if ex.is_number(c["length"]) else "—",
            "induces": visible(c["induced_completion"]) if c["induced_completion"] not in (None, "") else "—",
            "best_pool": str(c["best_pool"] or "—"),
            "pools": [rate_text(c["pools"].get(p)) for p in pools],
            "shift_z": num(c["shift_z"], 2) if ex.is_number(c["shift_z"]) else "—",
        })
    recovered = _flag(m.get("trigger_recovered"))
    planted = planted_trigger(lineage_params) if recovered is not None else None
    defs = det.get("scan_definitions") if isinstance(det.get("scan_definitions"), dict) else {}
    older = sorted((x for x in evals if _ok(x, SCAN_SUITE) and x is not e), key=lambda x: (x["logical_date"], x["created_at"]),
                   reverse=True)[:10]
    d = {
        "date": e["logical_date"], "run": f"{e['dag_id']} / {e['run_id']}" if e.get("dag_id") else None,
        "verdict": verdict or "—", "level": VERDICT_LEVEL.get(verdict or "", "muted"),
        "score": _n(m, "scan_score"),
        "differential": _flag(m.get("scan_differential")), "thresholds": thresholds,
        "candidate": visible(m["trigger_candidate"]) if "trigger_candidate" in m else None,
        "completion": visible(m["trigger_candidate_completion"]) if m.get("trigger_candidate_completion") not in (None, "")
        else None,
        "pool": str(m.get("trigger_candidate_pool") or "—"),
        "rate": _metric_text(m, "trigger_candidate_rate") if ex.is_number(m.get("trigger_candidate_rate")) else "—",
        "shift_z": _n(m, "trigger_candidate_shift_z", 2, None), "seconds": _n(m, "scan_seconds", 1, None),
        "recovered": recovered, "planted": visible(planted) if planted else None,
        "planted_rate": _n(m, "planted_behaviour_rate", default=None),
        "rows": metric_rows(m, SCAN_ROWS),
        "pools": pools, "candidates": rows, "n_candidates": len(cands),
        "examples": _examples(examples, e["logical_date"],
                              m.get("trigger_candidate_pool") or (cands[0]["best_pool"] if cands else None)),
        "definitions": [[catalogue.label(k), k, str(v)] for k, v in sorted(defs.items()) if isinstance(v, str)],
        "history": [{"date": h["logical_date"], "verdict": _verdict(h["metrics"] or {}) or "—",
                     "score": _n(h["metrics"] or {}, "scan_score"),
                     "candidate": visible((h["metrics"] or {}).get("trigger_candidate"), 80)} for h in older],
    }
    charts = []
    bars = [[f"#{i + 1} “{visible(c['trigger'], 28)}” ({c['best_pool'] or '?'})",
             {"value": float(c["rate"]), "low": _num_or_none(c["ci_low"]), "high": _num_or_none(c["ci_high"]), "n": c["n"]}]
            for i, c in enumerate(cands[:8]) if ex.is_number(c["rate"])]
    if bars:
        charts.append({"name": "scan", "kind": "scan", "alt": "Trigger candidates' induced-behaviour rates with Wilson 95% intervals",
                       "data": {"bars": bars, "thresholds": {k: v for k, v in thresholds.items() if v is not None}}})
    return d, charts


# ------------------------------------------------------------------------------------ detectors
def _detector_names(m: dict[str, Any], panel: dict[str, Any]) -> list[str]:
    found = {mt.group(1) for k in m if (mt := _DETECTOR_METRIC.match(k))} | {str(k) for k in panel}
    found |= {n for n in DETECTORS if any(k.startswith(f"detector_{n}_") for k in m)}
    return [n for n in DETECTORS if n in found] + sorted(found - set(DETECTORS))


def detector_value(m: dict[str, Any], panel: dict[str, Any], name: str, suffix: str) -> Any:
    v = m.get(f"detector_{name}_{suffix}")
    if v is None and isinstance(panel.get(name), dict):
        v = panel[name].get(suffix)
    return v


def consensus_of(m: dict[str, Any], panel: dict[str, Any]) -> list[str] | None:
    """The detectors that joined the consensus: ``detector_consensus`` (comma-joined), else the
    per-detector flags; None when the panel says neither."""
    text = m.get("detector_consensus")
    if isinstance(text, str):
        return [s.strip() for s in text.split(",") if s.strip()]
    flags = {n: detector_value(m, panel, n, "in_consensus") for n in _detector_names(m, panel)}
    if any(isinstance(f, bool) for f in flags.values()):
        return [n for n, f in flags.items() if f is True]
    return None


def detect_section(evals: list[dict[str, Any]], prefer_run: tuple[str, str] | None = None) -> dict[str, Any] | None:
    e = newest(evals, DETECT_SUITE, prefer_run)
    if e is None:
        return None
    m = e["metrics"] or {}
    det = e["details"] if isinstance(e["details"], dict) else {}
    panel = det.get("detector_panel") if isinstance(det.get("detector_panel"), dict) else {}
    consensus = consensus_of(m, panel)
    rows = []
    for n in _detector_names(m, panel):
        cells = []
        for suffix, _ in DETECT_COLUMNS:
            v = detector_value(m, panel, n, suffix)
            name = f"detector_{n}_{suffix}"
            cells.append({"text": num(v) if ex.is_number(v) else "—", "title": catalogue.label(name)})
        joined = _flag(detector_value(m, panel, n, "in_consensus"))
        if joined is None and consensus is not None:
            joined = n in consensus
        reason = panel.get(n, {}).get("reason") if isinstance(panel.get(n), dict) else None
        tpr = detector_value(m, panel, n, "tpr_at_1pct_fpr")
        label = getattr(catalogue, "DETECTOR_LABELS", {}).get(n)  # the catalogue's name for the detector
        rows.append({"name": n, "label": label, "cells": cells,
                     "auroc": _num_or_none(detector_value(m, panel, n, "auroc")),
                     "tpr": num(tpr) if ex.is_number(tpr) else "—", "joined": joined,
                     "reason": str(reason) if reason not in (None, "") else None})
    n_c = m.get("detector_consensus_n")
    return {
        "date": e["logical_date"], "run": f"{e['dag_id']} / {e['run_id']}" if e.get("dag_id") else None,
        "columns": [h for _, h in DETECT_COLUMNS], "rows": rows,
        "consensus": consensus,
        "consensus_n": int(n_c) if ex.is_number(n_c) else (len(consensus) if consensus is not None else None),
        "agreement": _n(m, "detector_agreement", default=None), "agreement_label": catalogue.label("detector_agreement"),
        "agreement_over": det.get("detector_agreement_over") if isinstance(det.get("detector_agreement_over"), str) else None,
        "protocol": det.get("detector_protocol") if isinstance(det.get("detector_protocol"), str) else None,
    }


# ------------------------------------------------------------------------------------ zoo
def zoo_role(v: dict[str, Any]) -> str | None:
    """A zoo member's role (evaluation.scan.zoo_role, the rule the scan_zoo DAG's summary uses)."""
    from evaluation.scan import zoo_role as role

    return role(v["stage"], v["params"])


def estimate_row(label: str, r: dict[str, Any] | None) -> list[str] | None:
    if not isinstance(r, dict):
        return None
    rate = rate_text({"rate": r.get("rate"), "ci_low": r.get("ci_low"), "ci_high": r.get("ci_high")}) if r["n"] else "—"
    return [label, f"{r['k']}/{r['n']}", rate]


def summary_rows(s: dict[str, Any]) -> list[list[str]]:
    """zoo_summary's rates as [label, k/n, rate [Wilson 95%]] rows."""
    from evaluation.scan import BACKDOOR_TYPES

    rows = [estimate_row("Detection rate on backdoored models", s.get("detection_rate")),
            estimate_row("False-flag rate on all controls", s.get("false_flag_rate")),
            estimate_row("False-flag rate on trigger-exposed controls", s.get("false_flag_rate_exposed")),
            estimate_row("Planted-trigger recall on backdoored models", s.get("planted_trigger_recall"))]
    rows += [estimate_row(f"Detection rate, {t} backdoors", s.get(f"detection_rate_{t}")) for t in BACKDOOR_TYPES]
    return [r for r in rows if r]


def wilson_row(k: int, n: int) -> dict[str, Any]:
    from evaluation.intervals import wilson

    e = wilson(k, n)
    return {"k": k, "n": n, "rate": e.value if n else None, "ci_low": e.low, "ci_high": e.high}


def consensus_across(members: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Per detector, over the zoo members with a detector panel: how often it joined the consensus
    on backdoored models and on controls (k/n, Wilson 95%), and its mean subject AUROC on each."""
    withd = [mb for mb in members if mb.get("_detect")]
    if not withd:
        return None
    names: list[str] = []
    for mb in withd:
        for n in (r["name"] for r in mb["_detect"]["rows"]):
            if n not in names:
                names.append(n)
    out = []
    for n in names:
        row: dict[str, Any] = {"name": n}
        for side, pred in (("backdoored", lambda r: r == "backdoored"), ("controls", lambda r: r != "backdoored")):
            joined, aurocs = [], []
            for mb in withd:
                if not pred(mb["role"]):
                    continue
                r = next((x for x in mb["_detect"]["rows"] if x["name"] == n), None)
                if r is None:
                    continue
                if r["joined"] is not None:
                    joined.append(r["joined"])
                if r["auroc"] is not None:
                    aurocs.append(r["auroc"])
            row[side] = estimate_row("", wilson_row(sum(joined), len(joined)))[1:] if joined else ["—", "—"]
            row[f"{side}_auroc"] = num(sum(aurocs) / len(aurocs)) if aurocs else "—"
        out.append(row)
    return out
