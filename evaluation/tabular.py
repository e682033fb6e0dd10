"""Classical (scikit-learn) models: dataset validation, the model artifact, and the evaluation.

* :func:`validate_table` checks a table before anything trains on it or registers it: required
  columns, numeric feature types, missing and infinite values, duplicate ids, number of rows,
  class balance. It returns every problem at once (not the first), so a user fixes them in one go.
* The model artifact is a directory: ``model.joblib`` (the fitted estimator or pipeline) and
  ``meta.json`` (kind, strategy, features, target, classes, positive class, threshold).
* :func:`evaluate_classifier`: accuracy, precision, recall, F1 (Wilson / bootstrap intervals),
  ROC-AUC and average precision (bootstrap intervals), the confusion matrix, configured
  threshold checks and plain-language recommendations. Anomaly detectors are evaluated the same
  way when the data carries a label (1 = anomaly).

Imports nothing of Vigil; used by the gpu-trainer stages and by the Airflow side.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluation.comparison import fast_ap, fast_auc
from evaluation.intervals import Estimate, auc_score_interval, bootstrap, wilson

MODEL_FILE = "model.joblib"
META_FILE = "meta.json"
MIN_ROWS = 50
MIN_CLASS_ROWS = 10
MAX_MISSING_SHARE = 0.2


# --------------------------------------------------------------------------- reading + validation
def read_table(path: str | Path) -> pd.DataFrame:
    """A Parquet or CSV file as a DataFrame (by extension)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such file {p}")
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(p)
    if suffix in (".csv", ".txt"):
        return pd.read_csv(p)
    raise ValueError(f"{p.name}: unsupported format {suffix!r}; use .parquet or .csv")


@dataclass
class ValidationReport:
    ok: bool
    n_rows: int
    target: str | None
    features: list[str]
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    schema: dict[str, str] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    class_balance: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)


def validate_table(df: pd.DataFrame, *, target: str | None, features: list[str] | None = None,
                   id_column: str | None = "row_id", task: str = "classifier",
                   min_rows: int = MIN_ROWS) -> ValidationReport:
    """Every reason the table cannot be used, at once. ``task``: 'classifier' (target required,
    binary) or 'anomaly' (target optional; when given it is the 0/1 anomaly label)."""
    problems: list[str] = []
    warnings: list[str] = []
    cols = [str(c) for c in df.columns]
    schema = {str(c): str(t) for c, t in df.dtypes.items()}
    if task not in ("classifier", "anomaly"):
        problems.append(f"task {task!r} must be 'classifier' or 'anomaly'")
    if task == "classifier" and not target:
        problems.append("target: a classifier needs a target column; pass --target / spec field 'target'")
    if target and target not in cols:
        problems.append(f"target column {target!r} is missing; columns are: {', '.join(cols[:20])}")
    excluded = {c for c in (target, id_column) if c}
    if features is None:
        features = [c for c in cols if c not in excluded]
    else:
        absent = [f for f in features if f not in cols]
        if absent:
            problems.append(f"feature columns missing: {', '.join(absent)}")
        features = [f for f in features if f in cols]
    if not features:
        problems.append("no feature columns: the table needs at least one column besides the target and id")
    n = len(df)
    if n < min_rows:
        problems.append(f"only {n} rows; at least {min_rows} are needed to train and evaluate with intervals")
    non_numeric = [f for f in features if not _is_numeric(df[f])]
    if non_numeric:
        problems.append(f"non-numeric feature columns (encode them as numbers first): {', '.join(non_numeric[:10])}")
    missing = {f: int(df[f].isna().sum()) for f in features if df[f].isna().any()}
    for f, k in missing.items():
        share = k / max(n, 1)
        if share > MAX_MISSING_SHARE:
            problems.append(f"feature {f!r} is missing in {share:.0%} of rows (limit {MAX_MISSING_SHARE:.0%}); "
                            "fill it or drop the column")
        else:
            warnings.append(f"feature {f!r} is missing in {k} rows; the model imputes the median")
    numeric = [f for f in features if f not in non_numeric]
    if numeric:
        vals = df[numeric].to_numpy(dtype=float, na_value=np.nan)
        inf_cols = [numeric[i] for i in np.nonzero(np.isinf(vals).any(axis=0))[0]]
        if inf_cols:
            problems.append(f"infinite values in: {', '.join(inf_cols[:10])}; replace them")
        const = [numeric[i] for i in range(len(numeric)) if np.nanstd(vals[:, i]) == 0]
        if const:
            warnings.append(f"constant feature columns carry no information: {', '.join(const[:10])}")
    if id_column and id_column in cols:
        dups = int(df[id_column].duplicated().sum())
        if dups:
            problems.append(f"id column {id_column!r} has {dups} duplicate values; ids must be unique")
        if df[id_column].isna().any():
            problems.append(f"id column {id_column!r} has missing values")
    balance: dict[str, int] = {}
    if target and target in cols:
        y = df[target]
        if y.isna().any():
            problems.append(f"target {target!r} is missing in {int(y.isna().sum())} rows; drop or label them")
        counts = y.dropna().value_counts()
        balance = {str(k): int(v) for k, v in counts.items()}
        if len(counts) == 1:
            problems.append(f"target {target!r} has a single class ({counts.index[0]!r}); both classes are needed")
        elif len(counts) > 2:
            problems.append(f"target {target!r} has {len(counts)} classes; only binary targets are supported")
        elif len(counts) == 2:
            if task == "anomaly" and not set(counts.index.tolist()) <= {0, 1}:  # True/False compare equal to 1/0
                problems.append(f"anomaly label {target!r} must be 0/1 (1 = anomaly)")
            minority = int(counts.min())
            if minority < MIN_CLASS_ROWS:
                problems.append(f"minority class {counts.idxmin()!r} has only {minority} rows; "
                                f"at least {MIN_CLASS_ROWS} are needed")
            elif minority / n < 0.05:
                warnings.append(f"imbalanced target: minority class is {minority / n:.1%} of rows; "
                                "judge the model by recall/precision and average precision, not accuracy")
    return ValidationReport(not problems, n, target, list(features), problems, warnings, schema, missing, balance)


# --------------------------------------------------------------------------- the model artifact
def save_model(out_dir: str | Path, estimator, meta: dict[str, Any]) -> Path:
    import joblib

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    joblib.dump(estimator, d / MODEL_FILE)
    (d / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
    return d


def load_model(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """(estimator, meta) from a model directory written by :func:`save_model`."""
    import joblib

    d = Path(path)
    if d.is_file():
        d = d.parent
    if not (d / MODEL_FILE).is_file() or not (d / META_FILE).is_file():
        raise FileNotFoundError(f"{d} is not a scikit-learn model directory (needs {MODEL_FILE} and {META_FILE})")
    return joblib.load(d / MODEL_FILE), json.loads((d / META_FILE).read_text())


def predict(estimator, meta: dict[str, Any], X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list]:
    """(y_pred as 0/1 where 1 = positive class/anomaly, score where higher = more positive, label values)."""
    X = X[meta["features"]]
    if meta["kind"] == "anomaly":
        score = -estimator.score_samples(X)  # higher = more anomalous
        y_pred = (estimator.predict(X) == -1).astype(np.int8)
        labels = np.where(y_pred == 1, "anomaly", "normal")
        return y_pred, score, labels.tolist()
    classes = list(meta["classes"])
    pos = classes.index(meta["positive_class"])
    proba = estimator.predict_proba(X)[:, pos]
    thr = float(meta.get("threshold", 0.5))
    y_pred = (proba >= thr).astype(np.int8)
    neg = classes[1 - pos]
    labels = [meta["positive_class"] if p else neg for p in y_pred]
    return y_pred, proba, labels


def binary_target(y: pd.Series, meta: dict[str, Any]) -> np.ndarray:
    """The target as 0/1 with 1 = the positive class (or anomaly)."""
    if meta["kind"] == "anomaly":
        return y.astype(int).to_numpy().astype(np.int8)
    return (y.astype(str) == str(meta["positive_class"])).to_numpy().astype(np.int8)


# --------------------------------------------------------------------------- metrics
def _as_metrics(name: str, e: Estimate) -> dict[str, float | int]:
    d = e.as_metrics(name)
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def classification_metrics(y: np.ndarray, y_pred: np.ndarray, score: np.ndarray | None, *, n_boot: int = 1000,
                           seed: int = 0) -> dict[str, Any]:
    """Every metric with its 95% interval (metric-name contract: name, _ci_low, _ci_high, _n)."""
    y = np.asarray(y).astype(int)
    p = np.asarray(y_pred).astype(int)
    tp = int(np.sum((y == 1) & (p == 1)))
    tn = int(np.sum((y == 0) & (p == 0)))
    fp = int(np.sum((y == 0) & (p == 1)))
    fn = int(np.sum((y == 1) & (p == 0)))
    m: dict[str, Any] = {}
    m.update(_as_metrics("accuracy", wilson(tp + tn, len(y))))
    m.update(_as_metrics("precision", wilson(tp, tp + fp)))
    m.update(_as_metrics("recall", wilson(tp, tp + fn)))
    m.update(_as_metrics("specificity", wilson(tn, tn + fp)))

    def f1(yy, pp):
        t = np.sum((yy == 1) & (pp == 1))
        d = 2 * t + np.sum((yy == 0) & (pp == 1)) + np.sum((yy == 1) & (pp == 0))
        return 2 * t / d if d else 0.0

    m.update(_as_metrics("f1", bootstrap(f1, y, p, n_boot=n_boot, seed=seed)))
    if score is not None and 0 < y.sum() < len(y):
        s = np.asarray(score, float)
        auc = bootstrap(fast_auc, y, s, n_boot=n_boot, seed=seed)
        if auc.low == auc.high:  # perfect separation: every resample gives the same AUC
            auc = auc_score_interval(auc.value, int(y.sum()), int(len(y) - y.sum()))
        m.update(_as_metrics("roc_auc", auc))
        m.update(_as_metrics("average_precision", bootstrap(fast_ap, y, s, n_boot=n_boot, seed=seed)))
    m["n_samples"] = len(y)
    m["positive_rate"] = float(y.mean()) if len(y) else None
    m["confusion"] = {"tp": tp, "fp": fp, "tn": tn, "fn": fn}
    return m


def check_thresholds(metrics: dict[str, Any], thresholds: dict[str, float]) -> list[dict[str, Any]]:
    """Configured minimums (``{"roc_auc": 0.8}``): passed on the point estimate, and whether the
    lower bound of the interval clears it too (a pass that the interval does not support is flagged)."""
    out = []
    for name, minimum in thresholds.items():
        v = metrics.get(name)
        lo = metrics.get(f"{name}_ci_low")
        if v is None:
            out.append({"metric": name, "minimum": minimum, "value": None, "passed": False,
                        "note": f"{name} was not measured"})
            continue
        out.append({"metric": name, "minimum": minimum, "value": v, "ci_low": lo, "passed": bool(v >= minimum),
                    "confident": bool(lo is not None and lo >= minimum)})
    return out


def recommendations(metrics: dict[str, Any], checks: list[dict[str, Any]], *, cv: dict[str, Any] | None = None,
                    validation_warnings: list[str] | None = None) -> list[str]:
    """Plain-language advice from the numbers (each sentence says which number led to it)."""
    rec: list[str] = []
    for c in checks:
        if not c["passed"]:
            rec.append(f"{c['metric']} is {c['value'] if c['value'] is None else format(c['value'], '.3f')}, below the "
                       f"required {c['minimum']}: do not deploy this version.")
        elif not c.get("confident"):
            rec.append(f"{c['metric']} {c['value']:.3f} passes the required {c['minimum']} but its 95% interval reaches "
                       f"down to {c['ci_low']:.3f}: evaluate on more data before relying on it.")
    n = metrics.get("n_samples") or 0
    if n and n < 200:
        rec.append(f"only {n} evaluation rows: intervals are wide; collect more labelled data.")
    pr, rc = metrics.get("precision"), metrics.get("recall")
    if pr is not None and rc is not None and not (isinstance(pr, float) and math.isnan(pr)):
        if rc + 0.1 < pr:
            rec.append(f"recall {rc:.3f} is well below precision {pr:.3f}: the model misses positives; lower the "
                       "decision threshold if misses cost more than false alarms.")
        elif pr + 0.1 < rc:
            rec.append(f"precision {pr:.3f} is well below recall {rc:.3f}: many alarms are false; raise the threshold "
                       "if false alarms are costly.")
    base = metrics.get("positive_rate")
    ap = metrics.get("average_precision")
    if base is not None and ap is not None and ap < base + 0.1:
        rec.append(f"average precision {ap:.3f} is close to the base rate {base:.3f}: the scores barely rank "
                   "positives above negatives.")
    acc = metrics.get("accuracy")
    if base is not None and acc is not None:
        majority = max(base, 1 - base)
        if acc <= majority + 0.01:
            rec.append(f"accuracy {acc:.3f} is no better than always predicting the majority class ({majority:.3f}).")
    if cv and cv.get("roc_auc_std") is not None and cv["roc_auc_std"] > 0.05:
        rec.append(f"cross-validated ROC-AUC varies a lot between folds (std {cv['roc_auc_std']:.3f}): the model is "
                   "unstable; more data or stronger regularisation would help.")
    if cv and cv.get("roc_auc_mean") is not None and metrics.get("roc_auc") is not None:
        gap = cv["roc_auc_mean"] - metrics["roc_auc"]
        if gap > 0.05:
            rec.append(f"held-out ROC-AUC {metrics['roc_auc']:.3f} is {gap:.3f} below the cross-validated "
                       f"{cv['roc_auc_mean']:.3f}: the evaluation data may differ from the training data (drift).")
    for w in validation_warnings or []:
        rec.append(f"data: {w}.")
    if not rec:
        rec.append("no issue found: every configured threshold passes with its interval, and precision and recall "
                   "are balanced.")
    return rec


def cross_validate_model(estimator, X: pd.DataFrame, y: np.ndarray, *, folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """Stratified k-fold ROC-AUC/accuracy of a fresh clone of ``estimator`` (mean, std, per fold)."""
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, cross_validate

    if folds < 2:
        return {}
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    res = cross_validate(clone(estimator), X, y, cv=cv, scoring=("roc_auc", "accuracy"), n_jobs=1)
    out: dict[str, Any] = {"folds": folds}
    for k in ("roc_auc", "accuracy"):
        vals = res[f"test_{k}"]
        out[f"{k}_mean"] = float(np.mean(vals))
        out[f"{k}_std"] = float(np.std(vals, ddof=1))
        out[f"{k}_folds"] = [float(v) for v in vals]
    return out
