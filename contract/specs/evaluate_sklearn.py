"""The ``evaluate-sklearn`` stage's spec: what ``gpu-trainer evaluate-sklearn`` accepts (run by ``gpu_trainer.stages.evaluate_sklearn``).

Pydantic and the standard library only, so the Airflow side validates a spec (trigger forms, spec
tasks) with the same class the stage runs, without torch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from contract.spec import StageSpec, is_file, user_path
from contract.specs.train_sklearn import check_table_path


class Spec(StageSpec):
    model: str = Field(min_length=1, description="Model directory written by train-sklearn (model.joblib + meta.json).")
    dataset: str = Field(min_length=1, description="Table to evaluate on (.parquet or .csv) with the model's features and target.")
    split: Literal["holdout", "all"] = Field(default="holdout", description="'holdout': only rows held out by id hash; 'all': every row.")
    target: str | None = Field(default=None, min_length=1, description="Label column; default: the one the model was trained with.")
    thresholds: dict[str, float] = Field(default_factory=dict, description="Minimum metrics, e.g. {\"roc_auc\": 0.8}; merged over the model's own.")
    cv_folds: int = Field(default=5, ge=0, le=20, description="Stratified k-fold cross-validation of the estimator on the table (0 = skip).")
    n_boot: int = Field(default=1000, ge=100, le=20000, description="Bootstrap resamples for the F1/AUC/AP intervals.")
    explain_rows: int = Field(default=500, ge=0, le=100000, description="Rows explained with SHAP for the global importance (0 = skip).")

    @field_validator("model")
    @classmethod
    def _model_dir(cls, v: str) -> str:
        p = user_path(v)
        d = p.parent if is_file(p) else p
        if not is_file(d / "model.joblib") or not is_file(d / "meta.json"):
            raise ValueError(f"{v!r} is not a train-sklearn model directory (needs model.joblib and meta.json)")
        return v

    @field_validator("dataset")
    @classmethod
    def _dataset_exists(cls, v: str) -> str:
        return check_table_path(v)
