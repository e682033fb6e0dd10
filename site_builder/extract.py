"""Readers for the structured results the stages store (evaluation ``details``, Parquet rows).

Each reader reads the keys and shapes the gpu-trainer stages write (named beside each reader), and
returns ``None`` when they are absent or malformed: a page then shows its "no data yet" state.
Nothing here guesses at other names, and nothing raises on odd input.
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
    """{tp, fn, fp, tn, derived}: ``confusion_matrix`` (validate-backdoor, test-persistence: a dict),
    ``confusion`` (the scikit-learn stages: ``[[tn, fp], [fn, tp]]``), else derived from the
    activation rates and their sample sizes."""
    cm = first(details, "confusion_matrix")
    if isinstance(cm, Mapping) and all(is_number(cm.get(k)) for k in ("tp", "fn", "fp", "tn")):
        return {k: int(cm[k]) for k in ("tp", "fn", "fp", "tn")} | {"derived": False}
    cm = first(details, "confusion")
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
    """[[x, y], ...] from a list of numbers (x = index, as the per-layer AUROC lists) or of pairs
    (as ROC points)."""
    if not isinstance(obj, list) or not obj:
        return None
    if all(is_number(v) for v in obj):
        return [[float(i), float(v)] for i, v in enumerate(obj)]
    pts = [[float(item[0]), float(item[1])] for item in obj
           if isinstance(item, (list, tuple)) and len(item) == 2 and is_number(item[0]) and is_number(item[1])]
    return pts or None


def per_layer(details: Mapping[str, Any] | None, rows: Iterable[Mapping[str, Any]] | None = None) -> dict[str, list] | None:
    """{'probe': [[layer, auroc]...], 'control': ..., 'control_base': ..., 'supervised': ...,
    'random_best': x} from train-probes' details (whichever exist), else the subject's contrast-pair
    rows of its ``probe_layers`` table."""
    out: dict[str, list] = {}
    keys = {"probe": "probe_auroc_by_layer", "control": "probe_auroc_control_by_layer",
            "control_base": "probe_auroc_control_base_by_layer", "supervised": "probe_supervised_auroc_by_layer"}
    for label, key in keys.items():
        s = _series(first(details, key))
        if s:
            out[label] = s
    rand = first(details, "probe_random_aurocs")
    if isinstance(rand, Mapping) and is_number(rand.get("best")):
        out["random_best"] = float(rand["best"])
    if "probe" not in out and rows:
        pts = [[float(r["layer"]), float(r["auroc"])] for r in rows
               if r.get("model_role") == "subject" and r.get("probe") == "contrast_pair"
               and is_number(r.get("layer")) and is_number(r.get("auroc"))]
        if pts:
            out["probe"] = sorted(pts)
    return out or None


def roc(details: Mapping[str, Any] | None) -> list[list[float]] | None:
    """``probe_roc_best_layer``: [[fpr, tpr], ...] (train-probes)."""
    obj = first(details, "probe_roc_best_layer")
    if isinstance(obj, list) and obj and not all(is_number(v) for v in obj):
        return _series(obj)
    return None


def shap_summary(details: Mapping[str, Any] | None, limit: int = 15) -> list[list[Any]] | None:
    """[[feature, mean |SHAP|], ...] sorted by importance, at most ``limit``, from
    ``shap_importance.mean_abs`` (the scikit-learn stages)."""
    obj = first(details, "shap_importance")
    mean_abs = obj.get("mean_abs") if isinstance(obj, Mapping) else None
    if not isinstance(mean_abs, Mapping):
        return None
    pairs = sorted(([str(k), float(v)] for k, v in mean_abs.items() if is_number(v)), key=lambda p: -abs(p[1]))
    return pairs[:limit] or None


def loss_curve(rows: Iterable[Mapping[str, Any]] | None, stage_details: Mapping[str, Any] | None) -> list[list[float]] | None:
    """[[step, loss], ...] from the stage's ``training_curve`` rows, else its ``loss_history``
    (a thinned list of losses spread over the recorded number of steps)."""
    pts = sorted([float(r["step"]), float(r["loss"])] for r in rows or []
                 if is_number(r.get("step")) and is_number(r.get("loss")))
    if pts:
        return pts
    hist = first(stage_details, "loss_history")
    if isinstance(hist, Mapping) and isinstance(hist.get("every_n"), list) and hist["every_n"]:
        ys = [y for y in hist["every_n"] if is_number(y)]
        steps = hist.get("steps") if is_number(hist.get("steps")) else len(ys)
        stride = max(1.0, steps / max(1, len(ys)))
        return [[round(i * stride), float(y)] for i, y in enumerate(ys)] or None
    return None
