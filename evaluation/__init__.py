"""Vigil's evaluation library: metrics with confidence intervals, backdoor/probe/tabular suites,
champion-vs-challenger statistics, SHAP explanations. Pure Python (numpy/scipy/scikit-learn);
imports nothing else of Vigil's, so both the gpu-trainer container and Airflow tasks use it."""
