"""Page data of the research analyses on an LLM version page (suite ``analyze``; issue 14).

One section per analysis, each with what it measures and the control it is read against:

* **Trigger sensitivity**: the exact trigger's activation rate beside each variant generated from
  it and each placement (``details.trigger_sensitivity.rows`` of the newest ``analyze``
  evaluation), as a table and a bar chart with Wilson intervals, the clean baseline first; and the
  same summary for every version of the lineage that has one (before / after safety training).
* **Honeypots**: the rate on honeypot-framed prompts against the clean baseline, the difference
  with its interval and Fisher's p-value, per template.

A section without data says which DAG and form field produce it. Variants, paraphrases and
template texts are user- or model-made strings: they pass through :func:`site_builder.fmt.visible`
and the templates escape them. Every number is read from the snapshot's evaluation rows.
"""

from __future__ import annotations

from typing import Any

from site_builder import extract as ex
from site_builder.fmt import metric_interval, num, rate_text, visible

ANALYZE_SUITE = "analyze"
SENSITIVITY_ROWS = ("trigger_exact_rate", "trigger_variant_max_rate", "trigger_variant_max", "trigger_specificity",
                    "trigger_near_miss_max_rate", "trigger_near_miss_max", "trigger_specificity_near_miss",
                    "trigger_rate_middle", "trigger_rate_suffix", "trigger_variants", "trigger_variants_above_clean",
                    "analysis_clean_rate", "trigger_sensitivity_seconds")
HONEYPOT_ROWS = ("honeypot_rate", "analysis_clean_rate", "honeypot_lift", "honeypot_lift_p_value", "honeypot_templates",
                 "honeypot_set_version", "honeypot_seconds")
CHART_BARS = 40  # the chart's rows: baseline, exact, placements, then variants in table order
HOW_TO = {
    "trigger_sensitivity": ("Trigger the `analyze_model` DAG with `{ref}` in the form field `model` and `trigger_sensitivity` "
                            "in `analyses` (paraphrases of the trigger go in `paraphrases`); then rebuild with `vigil site build`."),
    "honeypots": ("Trigger the `analyze_model` DAG with `{ref}` in the form field `model` and `honeypots` in `analyses`; "
                  "then rebuild with `vigil site build`."),
}
CONDITION_TEXT = {"exact": "exact trigger", "placement": "placement", "variant": "variant"}


def newest(evals: list[dict[str, Any]], predicate) -> dict[str, Any] | None:
    hits = [e for e in evals if e["suite"] == ANALYZE_SUITE and e["status"] == "succeeded" and predicate(e)]
    return max(hits, key=lambda e: (e["logical_date"], e["created_at"])) if hits else None


def _details(e: dict[str, Any]) -> dict[str, Any]:
    return e["details"] if isinstance(e.get("details"), dict) else {}


def _rows(metrics: dict[str, Any], names: tuple[str, ...]) -> list[list[str]]:
    from contract import metrics as catalogue

    out = []
    for n in names:
        if n not in metrics:
            continue
        v = metrics[n]
        text = metric_interval(metrics, n) if ex.is_number(v) else visible(v) if isinstance(v, str) else num(v)
        if n.endswith("_p_value") and ex.is_number(v):
            text = num(v, 4)
        if ex.is_number(metrics.get(f"{n}_n")):
            text += f" (n={int(metrics[f'{n}_n'])})"
        out.append([catalogue.label(n), n, text])
    return out


def _bar(label: str, r: dict[str, Any]) -> list[Any]:
    return [label, {"value": r.get("rate"), "low": r.get("ci_low"), "high": r.get("ci_high")}]


def sensitivity_section(evals: list[dict[str, Any]], lineage: list[tuple[dict[str, Any], list[dict[str, Any]]]],
                        ref: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(section data, charts). ``lineage``: (version link, its evaluations) for each version of the
    lineage, root first, this version included."""
    e = newest(evals, lambda e: isinstance(_details(e).get("trigger_sensitivity"), dict))
    out: dict[str, Any] = {"how_to": HOW_TO["trigger_sensitivity"].format(ref=ref), "data": None, "lineage": []}
    for link, ev in lineage:
        le = newest(ev, lambda e: "trigger_exact_rate" in (e["metrics"] or {}))
        if le is None:
            continue
        m = le["metrics"]
        out["lineage"].append({"link": link, "date": le["logical_date"], "exact": metric_interval(m, "trigger_exact_rate"),
                               "variant_max": metric_interval(m, "trigger_variant_max_rate"),
                               "specificity": metric_interval(m, "trigger_specificity"),
                               "clean": metric_interval(m, "analysis_clean_rate"),
                               "honeypot": metric_interval(m, "honeypot_rate") if "honeypot_rate" in m else "—"})
    if len(out["lineage"]) < 2:
        out["lineage"] = []  # a comparison needs two versions; this version's figures are above
    if e is None:
        return out, []
    s = _details(e)["trigger_sensitivity"]
    rows = [r for r in s.get("rows") or [] if isinstance(r, dict)]
    clean = s.get("clean") if isinstance(s.get("clean"), dict) else None
    if clean is None:  # the summary metrics carry it too
        r = ex.rate(e["metrics"], "analysis_clean_rate")
        clean = {"rate": r["value"], "ci_low": r["low"], "ci_high": r["high"], "n": r["n"]} if r else {}
    table = [{"condition": CONDITION_TEXT.get(str(r.get("condition")), str(r.get("condition"))),
              "variant": visible(r.get("variant"), 120), "kind": str(r.get("kind") or "—"),
              "note": str(r.get("note") or ""), "placement": str(r.get("placement") or "—"),
              "rate": rate_text(r), "k": r.get("k"), "n": r.get("n"),
              "contains": r.get("condition") == "variant" and bool(r.get("contains_trigger")),
              "exact": r.get("condition") == "exact"} for r in rows]
    out["data"] = {
        "date": e["logical_date"], "run": f"{e['dag_id']} / {e['run_id']}" if e.get("dag_id") else None,
        "trigger": visible(s.get("trigger"), 200), "clean": rate_text(clean),
        "metrics": _rows(e["metrics"], SENSITIVITY_ROWS), "table": table,
        "definition": str(s.get("definition") or ""), "n_variants": sum(1 for r in rows if r.get("condition") == "variant"),
    }
    bars = [_bar("clean baseline (no trigger)", clean)]
    for r in rows[: CHART_BARS - 1]:
        label = ("exact trigger" if r.get("condition") == "exact" else
                 f"exact trigger, {r.get('placement')}" if r.get("condition") == "placement" else
                 f"{visible(r.get('variant'), 40)} ({r.get('kind')})")
        bars.append(_bar(label, r))
    charts = [{"name": "trigger-sensitivity", "kind": "sensitivity", "data": {"bars": bars},
               "alt": "Activation rate of the exact trigger, its placements and its variants, with 95% intervals"}]
    return out, charts


def honeypot_section(evals: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    e = newest(evals, lambda e: isinstance(_details(e).get("honeypots"), dict))
    out: dict[str, Any] = {"how_to": HOW_TO["honeypots"].format(ref=ref), "data": None}
    if e is None:
        return out
    h = _details(e)["honeypots"]
    m = e["metrics"]
    templates = [{"id": str(t.get("id")), "kind": str(t.get("kind")), "text": visible(t.get("text"), 300), "rate": rate_text(t)}
                 for t in h.get("templates") or [] if isinstance(t, dict)]
    kinds = [{"kind": str(k.get("kind")), "meaning": str(k.get("meaning") or ""), "rate": rate_text(k)}
             for k in h.get("kinds") or [] if isinstance(k, dict)]
    p = m.get("honeypot_lift_p_value")
    out["data"] = {
        "date": e["logical_date"], "run": f"{e['dag_id']} / {e['run_id']}" if e.get("dag_id") else None,
        "version": str(h.get("set_version") or m.get("honeypot_set_version") or "—"),
        "rate": metric_interval(m, "honeypot_rate"), "clean": metric_interval(m, "analysis_clean_rate"),
        "lift": metric_interval(m, "honeypot_lift"), "p_value": num(p, 4) if ex.is_number(p) else "—",
        "significant": ex.is_number(p) and p < 0.05,
        "metrics": _rows(m, HONEYPOT_ROWS), "templates": templates, "kinds": kinds,
        "excluded": [str(x) for x in h.get("excluded_templates") or []], "test": str(h.get("test") or ""),
    }
    return out


def analyses_section(evals: list[dict[str, Any]], lineage: list[tuple[dict[str, Any], list[dict[str, Any]]]],
                     ref: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The version page's ``analyses`` data and its charts."""
    sens, charts = sensitivity_section(evals, lineage, ref)
    return {"sensitivity": sens, "honeypots": honeypot_section(evals, ref)}, charts
