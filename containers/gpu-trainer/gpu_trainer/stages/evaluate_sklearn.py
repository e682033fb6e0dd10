"""evaluate-sklearn: measure a trained scikit-learn model on a table.

Accuracy, precision, recall, specificity (Wilson intervals), F1, ROC-AUC and average precision
(bootstrap intervals), the confusion matrix, stratified cross-validation of the same estimator
on the table, configured threshold checks, plain-language recommendations and global SHAP
importance. Writes the per-sample ``predictions`` table (row id, label, prediction, score,
correctness, dataset sha256) so champion and challenger can be paired row by row. By default only
the held-out rows are scored (the same id-hash split train-sklearn used), so a model is never
graded on the rows it was trained on.
"""

from __future__ import annotations

from pathlib import Path

from contract.specs.evaluate_sklearn import Spec
from gpu_trainer.stages.train_sklearn import _versions

STAGE = "evaluate-sklearn"


def run(spec: Spec, out_dir: str):
    import platform

    import numpy as np

    from evaluation import tabular
    from evaluation.explain import Explainer
    from gpu_trainer.record import StageRecord
    from gpu_trainer.sklearn_data import holdout_mask

    rec = StageRecord(STAGE, spec, out_dir)
    rec.input("model", spec.model)
    rec.input("dataset", spec.dataset)
    est, meta = tabular.load_model(spec.model)
    target = spec.target or meta.get("target")
    if not target:
        raise ValueError("no target: the model was trained without labels; pass 'target' (a 0/1 anomaly label column)")
    df = tabular.read_table(spec.dataset)
    report = tabular.validate_table(df, target=target, features=meta["features"], id_column=meta["id_column"],
                                    task=meta["kind"], min_rows=10)
    if report.problems:
        raise ValueError(f"dataset {spec.dataset} cannot evaluate this model ({len(report.problems)} problems): "
                         + "; ".join(report.problems))
    rows = df[holdout_mask(df[meta["id_column"]], meta["test_fraction"])] if spec.split == "holdout" else df
    if rows[target].nunique() < 2:
        raise ValueError(f"the {spec.split} rows ({len(rows)}) have a single class; use split='all' or more data")
    y = tabular.binary_target(rows[target], meta)
    y_pred, score, labels = tabular.predict(est, meta, rows)
    m = tabular.classification_metrics(y, y_pred, score, n_boot=spec.n_boot, seed=spec.seed)
    rec.details["confusion"] = m.pop("confusion")
    rec.metrics.update(m)
    cv = {}
    if spec.cv_folds >= 2 and meta["kind"] == "classifier":
        cv = tabular.cross_validate_model(est, df[meta["features"]].astype(float), tabular.binary_target(df[target], meta),
                                          folds=spec.cv_folds, seed=spec.seed)
        rec.details["cross_validation"] = cv
        rec.metrics["cv_roc_auc_mean"], rec.metrics["cv_roc_auc_std"] = cv["roc_auc_mean"], cv["roc_auc_std"]
    checks = tabular.check_thresholds(rec.metrics, {**meta.get("thresholds", {}), **spec.thresholds})
    rec.details["threshold_checks"] = checks
    rec.metrics["thresholds_passed"] = all(c["passed"] for c in checks)
    rec.details["recommendations"] = tabular.recommendations(rec.metrics, checks, cv=cv,
                                                             validation_warnings=report.warnings)
    if spec.explain_rows:
        bg_path = Path(spec.model) / "background.npy"
        expl = Explainer(est, np.load(bg_path) if bg_path.is_file() else None, features=meta["features"])
        sample = rows[meta["features"]].astype(float).iloc[: spec.explain_rows]
        e = expl.explain(sample)
        if e.values is not None:
            imp = np.abs(e.values).mean(axis=0)
            rec.details["shap_importance"] = {"explainer": e.kind, "output": e.output, "rows": len(sample),
                                              "mean_abs": {f: float(v) for f, v in
                                                           sorted(zip(meta["features"], imp, strict=True), key=lambda t: -t[1])}}
        else:
            rec.details["shap_importance"] = {"explainer": "none", "reason": e.reason}
    rec.details["split"] = spec.split
    rec.details["dataset"] = spec.dataset
    rec.details["dataset_validation"] = report.to_dict()
    sha = rec.inputs[1].sha256
    rec.table("predictions", [
        {"row_id": str(i), "y_true": int(t), "y_pred": int(p), "score": float(s), "correct": bool(t == p),
         "predicted_label": str(lab), "dataset_sha256": sha}
        for i, t, p, s, lab in zip(rows[meta["id_column"]], y, y_pred, score, labels, strict=True)
    ])
    return rec.finish(f"cpu ({platform.machine()})", _versions(), subject_uri=spec.model)
