"""train-sklearn / evaluate-sklearn through the real gpu-trainer CLI, and dataset registration."""

import json
import subprocess
import sys

import pandas as pd
import pytest
import sqlalchemy as sa

from contract.manifest import read_manifest
from gpu_trainer import sklearn_data
from vigil.groups.datasets import register_dataset
from vigil.groups.records import GroupError


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "gpu_trainer.cli", *args], capture_output=True, text=True)


def test_train_and_evaluate_through_the_cli(tmp_path):
    data = sklearn_data.write("synthetic", tmp_path / "syn.csv", rows=800)
    spec = {"dataset": str(data), "target": "label", "strategy": "logistic_regression", "model_name": "syn-lr",
            "cv_folds": 3, "n_boot": 200, "thresholds": {"roc_auc": 0.75, "recall": 0.99}}
    r = _cli("train-sklearn", "--spec-json", json.dumps(spec), "--out", str(tmp_path / "train"))
    assert r.returncode == 0, r.stderr
    m = read_manifest(tmp_path / "train")
    assert m.model.family == "sklearn" and m.model.name == "syn-lr"
    assert m.params["dataset"] == str(data.resolve())  # what the nightly DAG reads back
    assert 0.75 < m.metrics["roc_auc"] < 1 and m.metrics["roc_auc_ci_low"] < m.metrics["roc_auc"]
    assert set(m.details["confusion"]) == {"tp", "fp", "tn", "fn"}
    assert len(m.details["cross_validation"]["roc_auc_folds"]) == 3
    checks = {c["metric"]: c for c in m.details["threshold_checks"]}
    assert checks["roc_auc"]["passed"] and not checks["recall"]["passed"]
    assert any("recall" in r and "do not deploy" in r for r in m.details["recommendations"])

    ev = {"model": str(tmp_path / "train" / "model"), "dataset": str(data), "cv_folds": 0, "n_boot": 200}
    r = _cli("evaluate-sklearn", "--spec-json", json.dumps(ev), "--out", str(tmp_path / "eval"))
    assert r.returncode == 0, r.stderr
    e = read_manifest(tmp_path / "eval")
    assert e.subject_uri == ev["model"] and e.model is None
    (table,) = e.tables
    preds = pd.read_parquet(tmp_path / "eval" / table.path)
    assert table.kind == "predictions" and len(preds) == e.metrics["n_samples"] == table.rows
    assert {"row_id", "y_true", "y_pred", "score", "correct", "dataset_sha256"} <= set(preds.columns)
    # evaluated on exactly the rows train-sklearn held out
    train_preds = pd.read_parquet(tmp_path / "train" / "predictions.parquet")
    assert set(preds["row_id"]) == set(train_preds["row_id"])
    assert e.details["shap_importance"]["explainer"] == "linear"


def test_breast_cancer_from_scikit_learns_disk_copy(tmp_path):
    from gpu_trainer.stages import train_sklearn as T

    data = sklearn_data.write("breast_cancer", tmp_path / "bc.parquet")
    m = T.run(T.Spec(dataset=str(data), target="diagnosis", strategy="gradient_boosting", cv_folds=0, n_boot=200,
                     hyperparameters={"n_estimators": 30}), str(tmp_path / "t"))
    meta = json.loads((tmp_path / "t" / "model" / "meta.json").read_text())
    assert meta["positive_class"] == "malignant"  # the minority class by default
    assert m.details["dataset_validation"]["class_balance"] == {"benign": 357, "malignant": 212}
    assert m.metrics["roc_auc"] > 0.9


def test_anomaly_detector_trains_unsupervised_and_is_scored_on_labels(tmp_path):
    from gpu_trainer.stages import evaluate_sklearn as E
    from gpu_trainer.stages import train_sklearn as T

    data = sklearn_data.write("anomalies", tmp_path / "an.parquet", rows=1200)
    T.run(T.Spec(dataset=str(data), strategy="isolation_forest", features=[f"f{i}" for i in range(8)],
                 cv_folds=0), str(tmp_path / "t"))
    e = E.run(E.Spec(model=str(tmp_path / "t" / "model"), dataset=str(data), target="is_anomaly", cv_folds=0,
                     n_boot=200, explain_rows=50), str(tmp_path / "e"))
    assert e.metrics["roc_auc"] > 0.9  # uniform outliers far from N(0, I)
    assert e.details["shap_importance"]["explainer"] == "tree"


@pytest.mark.parametrize("mutate, expected", [
    pytest.param(lambda d: d.drop(columns=["label"]), ["target column 'label' is missing"], id="no-target"),
    pytest.param(lambda d: d.assign(label=0), ["single class"], id="one-class"),
    pytest.param(lambda d: d.head(30), ["only 30 rows"], id="too-few-rows"),
    pytest.param(lambda d: d.assign(x00="a", x01=float("nan"), row_id="same"),
                 ["non-numeric feature columns", "missing in 100% of rows", "duplicate values"], id="several"),
])
def test_unusable_data_is_refused_with_every_problem_listed(tmp_path, mutate, expected):
    df = mutate(sklearn_data.synthetic(rows=400, seed=1))
    p = tmp_path / "bad.parquet"
    df.to_parquet(p)
    r = _cli("train-sklearn", "--spec-json", json.dumps({"dataset": str(p), "target": "label"}),
             "--out", str(tmp_path / "o"))
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("gpu-trainer: error: train-sklearn failed") and "not usable" in last
    for msg in expected:
        assert msg in last, last
    assert not (tmp_path / "o" / "manifest.json").exists()
    report = json.loads((tmp_path / "o" / "validation_report.json").read_text())
    assert not report["ok"]


def test_bad_spec_fields_fail_fast_naming_the_field(tmp_path):
    r = _cli("train-sklearn", "--spec-json", json.dumps({"dataset": str(tmp_path / "x.parquet"), "target": "y"}),
             "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "field 'dataset'" in r.stderr and "does not exist" in r.stderr
    data = sklearn_data.write("synthetic", tmp_path / "s.parquet", rows=300)
    r = _cli("train-sklearn", "--spec-json", json.dumps({"dataset": str(data), "target": "label",
                                                          "strategy": "svm"}), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "field 'strategy'" in r.stderr
    r = _cli("evaluate-sklearn", "--spec-json", json.dumps({"model": str(tmp_path), "dataset": str(data)}),
             "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "field 'model'" in r.stderr


def test_register_dataset_validates_versions_and_is_idempotent(engine, tmp_path):
    p = sklearn_data.write("synthetic", tmp_path / "d.parquet", rows=300)
    a = register_dataset(engine, "synthetic", p, target="label")
    assert a["version"] == 1 and a["new"] and a["validation"]["class_balance"]
    assert register_dataset(engine, "synthetic", p, target="label")["id"] == a["id"]  # same bytes
    sklearn_data.write("synthetic", p, rows=300, seed=5)
    assert register_dataset(engine, "synthetic", p, target="label")["version"] == 2
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"row_id": range(100), "label": [1] * 100}).to_csv(bad, index=False)
    with pytest.raises(GroupError, match=r"(?s)not usable.*no feature columns.*single class"):
        register_dataset(engine, "bad", bad, target="label")
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT name, version, sha256, n_rows, validation->>'ok' FROM datasets ORDER BY id")).all()
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [("synthetic", 1, 300, "true"), ("synthetic", 2, 300, "true")]
