"""Defensive readers for the structured results stages store (evaluation ``details``, Parquet rows).

Stage outputs grow over time, so each reader accepts the shapes the stages write and a few
plausible neighbours, and returns ``None`` when the data is absent or malformed. A page shows a
"no data yet" state for ``None``; nothing here raises on odd input.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any


def is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def first(d: Mapping[str, Any] | None, *keys: str) -> Any:
    if not isinstance(d, Mapping):
        return None
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return None


def rate(metrics: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """``{value, low, high, n}`` for a metric following the interval naming contract."""
    v = metrics.get(name)
    if not is_number(v):
        return None
    lo, hi, n = metrics.get(f"{name}_ci_low"), metrics.get(f"{name}_ci_high"), metrics.get(f"{name}_n")
    return {"value": float(v), "low": float(lo) if is_number(lo) else None,
            "high": float(hi) if is_number(hi) else None, "n": int(n) if is_number(n) else None}


def confusion(details: Mapping[str, Any] | None, metrics: Mapping[str, Any]) -> dict[str, Any] | None:
    """{tp, fn, fp, tn, derived}: from details, else from the rates and their sample sizes."""
    cm = first(details, "confusion", "confusion_matrix", "confusion_triggered_vs_clean")
    if isinstance(cm, Mapping) and all(is_number(cm.get(k)) for k in ("tp", "fn", "fp", "tn")):
        return {k: int(cm[k]) for k in ("tp", "fn", "fp", "tn")} | {"derived": False}
    if isinstance(cm, list) and len(cm) == 2 and all(isinstance(r, list) and len(r) == 2 for r in cm):
        (tn, fp), (fn, tp) = cm  # sklearn layout: rows = actual (clean, triggered)
        if all(is_number(x) for x in (tn, fp, fn, tp)):
            return {"tp": int(tp), "fn": int(fn), "fp": int(fp), "tn": int(tn), "derived": False}
    trig, clean = rate(metrics, "activation_rate_triggered"), rate(metrics, "activation_rate_clean")
    if trig and clean and trig["n"] and clean["n"]:
        tp, fp = round(trig["value"] * trig["n"]), round(clean["value"] * clean["n"])
        return {"tp": tp, "fn": trig["n"] - tp, "fp": fp, "tn": clean["n"] - fp, "derived": True}
    return None


def _series(obj: Any) -> list[list[float]] | None:
    """[[x, y], ...] from a list of numbers (x = index), pairs, dicts, or {x: y} mappings."""
    if isinstance(obj, Mapping):
        xs = obj.get("layers") or obj.get("layer") or obj.get("x")
        ys = obj.get("auroc") or obj.get("values") or obj.get("y")
        if isinstance(xs, list) and isinstance(ys, list) and len(xs) == len(ys):
            pts = [[float(a), float(b)] for a, b in zip(xs, ys, strict=True) if is_number(a) and is_number(b)]
            return pts or None
        pts = []
        for k, v in obj.items():
            try:
                pts.append([float(k), float(v)])
            except (TypeError, ValueError):
                return None
        return sorted(pts) or None
    if not isinstance(obj, list) or not obj:
        return None
    if all(is_number(v) for v in obj):
        return [[float(i), float(v)] for i, v in enumerate(obj)]
    pts = []
    for item in obj:
        if isinstance(item, (list, tuple)) and len(item) >= 2 and is_number(item[0]) and is_number(item[1]):
            pts.append([float(item[0]), float(item[1])])
        elif isinstance(item, Mapping):
            x = first(item, "layer", "step", "x", "fpr")
            y = first(item, "auroc", "value", "loss", "y", "tpr", "score")
            if is_number(x) and is_number(y):
                pts.append([float(x), float(y)])
    return pts or None


def per_layer(details: Mapping[str, Any] | None, rows: Iterable[Mapping[str, Any]] | None = None) -> dict[str, list] | None:
    """{'probe': [[layer, auroc]...], 'control': [...], 'random': [...]} (whichever exist)."""
    out: dict[str, list] = {}
    cands = {
        "probe": ("probe_auroc_by_layer", "per_layer_auroc", "auroc_by_layer"),
        "control": ("probe_auroc_control_by_layer", "per_layer_auroc_control"),
        "control_base": ("probe_auroc_control_base_by_layer",),
        "supervised": ("probe_supervised_auroc_by_layer",),
    }
    for label, keys in cands.items():
        s = _series(first(details, *keys))
        if s:
            out[label] = s
    rand = first(details, "probe_random_aurocs")
    if isinstance(rand, Mapping) and is_number(rand.get("best")):
        out["random_best"] = float(rand["best"])
    if "probe" not in out and rows:
        pts = []
        for r in rows:
            if r.get("model_role", "subject") != "subject" or r.get("probe", "contrast_pair") != "contrast_pair":
                continue
            x, y = first(r, "layer"), first(r, "auroc", "score")
            if is_number(x) and is_number(y):
                pts.append([float(x), float(y)])
        if pts:
            out["probe"] = sorted(pts)
    return out or None


def roc(details: Mapping[str, Any] | None) -> list[list[float]] | None:
    obj = first(details, "probe_roc_best_layer", "roc_best", "roc")
    if isinstance(obj, Mapping) and isinstance(obj.get("fpr"), list) and isinstance(obj.get("tpr"), list):
        pts = [[float(a), float(b)] for a, b in zip(obj["fpr"], obj["tpr"], strict=False) if is_number(a) and is_number(b)]
        return pts or None
    if isinstance(obj, Mapping) and "points" in obj:
        obj = obj["points"]
    pts = _series(obj) if isinstance(obj, list) and obj and not all(is_number(v) for v in obj) else None
    return pts


def shap_summary(details: Mapping[str, Any] | None, limit: int = 15) -> list[list[Any]] | None:
    """[[feature, mean |SHAP|], ...] sorted by importance, at most ``limit``."""
    obj = first(details, "shap_importance", "shap", "shap_summary")
    if isinstance(obj, Mapping) and isinstance(obj.get("mean_abs"), Mapping):
        obj = obj["mean_abs"]
    if isinstance(obj, Mapping) and isinstance(obj.get("features"), list):
        vals = first(obj, "mean_abs", "mean_abs_shap", "values")
        if isinstance(vals, list) and len(vals) == len(obj["features"]):
            obj = dict(zip(obj["features"], vals, strict=True))
    pairs: list[list[Any]] = []
    if isinstance(obj, Mapping):
        pairs = [[str(k), float(v)] for k, v in obj.items() if is_number(v)]
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, Mapping):
                f, v = first(item, "feature", "name"), first(item, "mean_abs_shap", "mean_abs", "value")
                if f is not None and is_number(v):
                    pairs.append([str(f), float(v)])
            elif isinstance(item, (list, tuple)) and len(item) == 2 and is_number(item[1]):
                pairs.append([str(item[0]), float(item[1])])
    pairs.sort(key=lambda p: -abs(p[1]))
    return pairs[:limit] or None


def loss_curve(rows: Iterable[Mapping[str, Any]] | None, stage_details: Mapping[str, Any] | None) -> list[list[float]] | None:
    pts = []
    for r in rows or []:
        x, y = first(r, "step", "global_step", "epoch"), first(r, "loss", "train_loss")
        if is_number(x) and is_number(y):
            pts.append([float(x), float(y)])
    if pts:
        return sorted(pts)
    hist = first(stage_details, "loss_history")
    if isinstance(hist, Mapping) and isinstance(hist.get("every_n"), list) and hist["every_n"]:
        # a thinned list of losses: spread it over the recorded number of steps
        ys = [y for y in hist["every_n"] if is_number(y)]
        steps = hist.get("steps") if is_number(hist.get("steps")) else len(ys)
        stride = max(1.0, steps / max(1, len(ys)))
        return [[round(i * stride), float(y)] for i, y in enumerate(ys)] or None
    return _series(first(stage_details, "loss_curve", "training_curve"))
