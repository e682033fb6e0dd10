"""The ``train-sklearn`` stage's spec: what ``gpu-trainer train-sklearn`` accepts (run by ``gpu_trainer.stages.train_sklearn``).

Pydantic and the standard library only, so the Airflow side validates a spec (trigger forms, spec
tasks) with the same class the stage runs, without torch."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from contract.spec import StageSpec, is_file, user_path

Strategy = Literal["gradient_boosting", "logistic_regression", "random_forest", "isolation_forest"]
ANOMALY_STRATEGIES = {"isolation_forest"}
ALLOWED_EXTS = (".parquet", ".pq", ".csv")


def check_table_path(v: str) -> str:
    p = user_path(v)
    if p.suffix.lower() not in ALLOWED_EXTS:
        raise ValueError(f"{v!r} must be a .parquet or .csv file")
    if not is_file(p):
        raise ValueError(f"{v!r} does not exist; write one with `python -m gpu_trainer.sklearn_data synthetic OUT.parquet`")
    return str(p.resolve())


class Spec(StageSpec):
    model_name: str = Field(default="sklearn-model", min_length=1, max_length=200, description="Registry name of the produced model.")
    dataset: str = Field(min_length=1, description="Path of the training table (.parquet or .csv) with an id column.")
    target: str | None = Field(default=None, min_length=1, description="Target column (required for classifiers; optional 0/1 anomaly label for isolation_forest).")
    features: list[str] | None = Field(default=None, description="Feature columns; default: every column but the target and id.")
    id_column: str = Field(default="row_id", min_length=1, description="Unique row id column (drives the held-out split).")
    strategy: Strategy = Field(default="gradient_boosting", description="Estimator: a classifier or isolation_forest (anomaly detector).")
    positive_class: str | int | None = Field(default=None, description="Class scored as positive; default 1 for 0/1 targets, else the minority class.")
    test_fraction: float = Field(default=0.25, gt=0, lt=0.9, description="Share of rows held out for evaluation (by id hash).")
    threshold: float = Field(default=0.5, gt=0, lt=1, description="Probability at or above which a row is predicted positive.")
    hyperparameters: dict[str, Any] = Field(default_factory=dict, description="Passed to the estimator, e.g. {\"n_estimators\": 200}.")
    cv_folds: int = Field(default=5, ge=0, le=20, description="Stratified k-fold cross-validation on the training rows (0 = skip).")
    thresholds: dict[str, float] = Field(default_factory=dict, description="Minimum metrics to pass, e.g. {\"roc_auc\": 0.8}.")
    n_boot: int = Field(default=1000, ge=100, le=20000, description="Bootstrap resamples for the F1/AUC/AP intervals.")

    @field_validator("dataset")
    @classmethod
    def _dataset_exists(cls, v: str) -> str:
        return check_table_path(v)

    @model_validator(mode="after")
    def _target_needed(self) -> Self:
        if self.strategy not in ANOMALY_STRATEGIES and not self.target:
            raise ValueError(f"strategy {self.strategy!r} is a classifier and needs 'target' (the label column)")
        if self.strategy in ANOMALY_STRATEGIES and self.cv_folds and not self.target:
            self.cv_folds = 0  # no labels, nothing to cross-validate
        return self
