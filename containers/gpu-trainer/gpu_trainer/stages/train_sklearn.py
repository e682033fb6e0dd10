"""train-sklearn: a classical model (classifier or anomaly detector) from a Parquet/CSV table.

The table is validated first (required columns, numeric types, missing values, class balance);
unusable data stops the stage with every problem listed (and ``validation_report.json`` written).
Rows whose id hashes below ``test_fraction`` are held out (see ``gpu_trainer.sklearn_data``), so
every model trained on the same table is scored on the same held-out rows. The model directory
holds ``model.joblib``, ``meta.json`` and a background sample for SHAP; the manifest carries the
held-out metrics with intervals, cross-validation, and the per-sample ``predictions`` table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from contract.specs.train_sklearn import ANOMALY_STRATEGIES, Spec

STAGE = "train-sklearn"


def build_estimator(strategy: str, seed: int, hyperparameters: dict[str, Any]):
    from sklearn.ensemble import GradientBoostingClassifier, IsolationForest, RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    est = {
        "gradient_boosting": lambda: GradientBoostingClassifier(random_state=seed),
        "logistic_regression": lambda: LogisticRegression(max_iter=2000, random_state=seed),
        "random_forest": lambda: RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1),
        "isolation_forest": lambda: IsolationForest(random_state=seed),
    }[strategy]()
    unknown = sorted(set(hyperparameters) - set(est.get_params()))
    if unknown:
        raise ValueError(f"hyperparameters {unknown} are not parameters of {type(est).__name__}; "
                         f"valid: {', '.join(sorted(est.get_params()))}")
    est.set_params(**hyperparameters)
    steps = [("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
    if strategy == "logistic_regression":
        steps.append(("scale", StandardScaler()))
    steps.append(("model", est))
    return Pipeline(steps)


def _versions() -> dict[str, str]:
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("scikit-learn", "numpy", "pandas", "shap"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _positive_class(values, requested):
    uniq = list(values.dropna().unique())
    if requested is not None:
        match = [u for u in uniq if str(u) == str(requested)]
        if not match:
            raise ValueError(f"positive_class {requested!r} is not a value of the target; values: {uniq}")
        return match[0]
    if set(map(str, uniq)) <= {"0", "1"}:
        return next(u for u in uniq if str(u) == "1")
    counts = values.value_counts()
    return counts.idxmin()


def _py(v):
    return v.item() if hasattr(v, "item") else v


def run(spec: Spec, out_dir: str):
    import json
    import logging
    import platform

    import numpy as np

    from contract.manifest import ProducedModel
    from evaluation import tabular
    from gpu_trainer.record import StageRecord
    from gpu_trainer.sklearn_data import holdout_mask

    log = logging.getLogger("gpu_trainer")
    rec = StageRecord(STAGE, spec, out_dir)
    rec.input("dataset", spec.dataset)
    df = tabular.read_table(spec.dataset)
    task = "anomaly" if spec.strategy in ANOMALY_STRATEGIES else "classifier"
    report = tabular.validate_table(df, target=spec.target, features=spec.features, id_column=spec.id_column, task=task)
    (rec.out / "validation_report.json").write_text(json.dumps(report.to_dict(), indent=2, default=str))
    if spec.id_column not in df.columns:
        report.problems.append(f"id column {spec.id_column!r} is missing (set 'id_column')")
    if report.problems:
        raise ValueError(f"dataset {spec.dataset} is not usable ({len(report.problems)} problems): "
                         + "; ".join(report.problems))
    features = report.features
    held = holdout_mask(df[spec.id_column], spec.test_fraction)
    train, test = df[~held], df[held]
    if task == "classifier":
        pos = _positive_class(df[spec.target], spec.positive_class)
        classes = sorted(df[spec.target].dropna().unique().tolist(), key=str)
        meta_classes = [_py(c) for c in classes]
    else:
        pos, meta_classes = 1, [0, 1]
    if spec.target and test[spec.target].nunique() < 2:
        raise ValueError(f"the held-out split ({len(test)} rows) has a single class; raise test_fraction or add data")

    est = build_estimator(spec.strategy, spec.seed, spec.hyperparameters)
    X_train = train[features].astype(float)
    log.info("train-sklearn: %s on %d rows x %d features (%d held out)", spec.strategy, len(train), len(features), len(test))
    if task == "classifier":
        est.fit(X_train, train[spec.target])
    else:
        est.fit(X_train)
    meta = {
        "kind": task, "strategy": spec.strategy, "features": features, "target": spec.target,
        "id_column": spec.id_column, "classes": meta_classes, "positive_class": _py(pos),
        "threshold": spec.threshold, "test_fraction": spec.test_fraction, "dataset": spec.dataset,
        "dataset_sha256": rec.inputs[0].sha256, "thresholds": spec.thresholds,
    }
    model_dir = tabular.save_model(rec.out / "model", est, meta)
    rng = np.random.default_rng(spec.seed)
    bg_idx = rng.choice(len(X_train), size=min(200, len(X_train)), replace=False)
    np.save(model_dir / "background.npy", X_train.to_numpy()[bg_idx])
    rec.artifact("model", "model", "model")

    y_pred, score, labels = tabular.predict(est, meta, test)
    rec.metrics["n_train"] = int(len(train))
    rec.metrics["n_features"] = len(features)
    if spec.target:
        y = tabular.binary_target(test[spec.target], meta)
        m = tabular.classification_metrics(y, y_pred, score, n_boot=spec.n_boot, seed=spec.seed)
        rec.details["confusion"] = m.pop("confusion")
        rec.metrics.update(m)
        cv = {}
        if spec.cv_folds >= 2:
            y_train = tabular.binary_target(train[spec.target], meta)
            cv = tabular.cross_validate_model(est, X_train, y_train, folds=spec.cv_folds, seed=spec.seed) \
                if task == "classifier" else {}
            rec.details["cross_validation"] = cv
            if cv:
                rec.metrics["cv_roc_auc_mean"], rec.metrics["cv_roc_auc_std"] = cv["roc_auc_mean"], cv["roc_auc_std"]
        checks = tabular.check_thresholds(rec.metrics, spec.thresholds)
        rec.details["threshold_checks"] = checks
        rec.metrics["thresholds_passed"] = all(c["passed"] for c in checks)
        rec.details["recommendations"] = tabular.recommendations(rec.metrics, checks, cv=cv,
                                                                 validation_warnings=report.warnings)
        rows = [{"row_id": str(i), "y_true": int(t), "y_pred": int(p), "score": float(s), "correct": bool(t == p),
                 "predicted_label": str(lab), "dataset_sha256": meta["dataset_sha256"]}
                for i, t, p, s, lab in zip(test[spec.id_column], y, y_pred, score, labels, strict=True)]
        rec.table("predictions", rows)
    rec.details["dataset_validation"] = report.to_dict()
    rec.details["dataset"] = spec.dataset
    return rec.finish(f"cpu ({platform.machine()})", _versions(),
                      model=ProducedModel(name=spec.model_name, family="sklearn", artifact="model",
                                          description=f"{spec.strategy} on {Path(spec.dataset).name}"))
