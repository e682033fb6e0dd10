"""SHAP explanations for classical models, per row, as JSON-ready dicts.

Which explainer, and what its values add up to (the *explained output*):

| final estimator | explainer | values + base value = |
| --- | --- | --- |
| GradientBoosting / HistGradientBoosting classifier | ``shap.TreeExplainer`` (path-dependent) | the log-odds margin (``decision_function``) |
| RandomForest classifier | ``shap.TreeExplainer`` | the positive-class probability |
| LogisticRegression (and other linear models) | ``shap.LinearExplainer`` on a background sample | the log-odds margin |
| IsolationForest | ``shap.TreeExplainer`` | shap's isolation-forest output (mean path length; lower = more anomalous) |
| anything else | none | explanations are reported as absent, with the reason |

A pipeline's preprocessing steps (imputer, scaler) map each input column to one column, so the
final estimator is explained on the transformed rows and each value is attributed to the input
column of the same position. LLM groups get no SHAP: there is no tabular input to attribute to.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np


@dataclass
class Explanation:
    kind: str  # 'tree' | 'linear' | 'none'
    output: str  # what values + base add up to
    values: np.ndarray | None  # (n_rows, n_features)
    base: float | None
    reason: str = ""

    def rows(self, features: list[str], n_rows: int, digits: int = 6) -> list[dict[str, float] | None]:
        """One ``{feature: value}`` dict per row (None for every row when there is no explanation)."""
        if self.values is None:
            return [None] * n_rows
        return [{f: round(float(v), digits) for f, v in zip(features, row, strict=True)} for row in self.values]


def _split_pipeline(model):
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        return model[:-1], model[-1]
    return None, model


class Explainer:
    """Build once per model (and background), then call :meth:`explain` on batches."""

    def __init__(self, model, background: np.ndarray | None = None, features: list[str] | None = None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # shap's import warns about matplotlib colormap APIs
            import shap
        from sklearn.ensemble import (
            GradientBoostingClassifier,
            HistGradientBoostingClassifier,
            IsolationForest,
            RandomForestClassifier,
        )
        from sklearn.linear_model._base import LinearClassifierMixin, LinearModel

        self.pre, self.final = _split_pipeline(model)
        self.features = features  # column names the preprocessing steps were fitted with
        self.kind, self.output, self.reason = "none", "", ""
        self._explainer = None
        self._class_index = None
        est = self.final
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if isinstance(est, (GradientBoostingClassifier, HistGradientBoostingClassifier)):
                self._explainer = shap.TreeExplainer(est)
                self.kind, self.output = "tree", "log-odds margin (decision_function)"
            elif isinstance(est, RandomForestClassifier):
                self._explainer = shap.TreeExplainer(est)
                self.kind, self.output, self._class_index = "tree", "positive-class probability", 1
            elif isinstance(est, IsolationForest):
                self._explainer = shap.TreeExplainer(est)
                self.kind, self.output = "tree", "isolation-forest mean path length (lower = more anomalous)"
            elif isinstance(est, (LinearClassifierMixin, LinearModel)):
                if background is None or len(background) == 0:
                    self.reason = "a linear model needs a background sample for LinearExplainer; none was saved"
                else:
                    bg = self._transform(background)
                    self._explainer = shap.LinearExplainer(est, shap.maskers.Independent(bg, max_samples=200))
                    self.kind, self.output = "linear", "log-odds margin (decision_function)"
            else:
                self.reason = f"no fast exact SHAP explainer for {type(est).__name__}; explanations omitted"

    def _transform(self, X) -> np.ndarray:
        if self.pre is None:
            return np.asarray(X, float)
        if self.features is not None and not hasattr(X, "columns"):
            import pandas as pd

            X = pd.DataFrame(np.asarray(X, float), columns=self.features)
        return np.asarray(self.pre.transform(X), float)

    def explain(self, X) -> Explanation:
        if self._explainer is None:
            return Explanation("none", "", None, None, self.reason)
        Xt = self._transform(X)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vals = self._explainer.shap_values(Xt)
        vals = np.asarray(vals)
        base = np.atleast_1d(np.asarray(self._explainer.expected_value, float))
        if vals.ndim == 3:  # (n, features, classes)
            vals = vals[:, :, self._class_index or 1]
            base = base[self._class_index or 1: (self._class_index or 1) + 1]
        if vals.ndim != 2 or vals.shape[1] != np.shape(X)[1]:
            # An imported pipeline whose preprocessing adds or drops columns (one-hot, selection):
            # its SHAP values cannot be named by the input features, so none are given.
            return Explanation("none", "", None, None, f"the model's preprocessing maps {np.shape(X)[1]} input "
                               f"features to {vals.shape[-1]} columns; SHAP values cannot be attributed to features")
        b = float(base[0])
        return Explanation(self.kind, self.output, vals, b if math.isfinite(b) else None)
