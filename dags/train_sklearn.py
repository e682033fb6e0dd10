"""train_sklearn: train a classical model (classifier or IsolationForest) on a registered dataset.

The table is validated and registered in ``datasets`` first (unusable data fails that task with
every problem listed, before any training); the model is registered with its held-out metrics,
and can join a model group as a challenger (the champion keeps the rest of the traffic).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag

from contract.specs import spec_for
from vigil.airflow.dag_wiring import RUN_CALLBACKS, WAREHOUSE_ASSET, run_ref, stage_tasks
from vigil.airflow.forms import param
from vigil.airflow.tasks import task
from vigil.lifecycle import specs as lc

spec = spec_for("train-sklearn")


@dag(
    dag_id="train_sklearn",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["vigil", "build", "classical"],
    **RUN_CALLBACKS,
    doc_md=__doc__,
    params={
        "dataset_path": Param("", type="string", minLength=1, title="Dataset path", section="Data",
                              description="Parquet or CSV table with an id column and (for classifiers) a target."),
        "dataset_name": Param("dataset", type="string", minLength=1, maxLength=200, title="Dataset name", section="Data",
                              description="Registry name of the dataset (same bytes = same version)."),
        "id_column": param(spec, "id_column", section="Data"),
        "target": param(spec, "target", section="Data"),
        "model_name": param(spec, "model_name", section="Model"),
        "strategy": param(spec, "strategy", section="Model"),
        "hyperparameters": param(spec, "hyperparameters", type="object", section="Model"),
        "test_fraction": param(spec, "test_fraction", section="Evaluation"),
        "threshold": param(spec, "threshold", section="Evaluation"),
        "cv_folds": param(spec, "cv_folds", section="Evaluation"),
        "seed": param(spec, "seed", section="Evaluation"),
        "group": Param(None, type=["null", "string"], title="Join group as challenger", section="Group",
                       description="Optional model group this version joins as a challenger."),
        "weight": Param(0.0, type="number", minimum=0, maximum=1, title="Challenger traffic weight", section="Group",
                        description="Share of the group's traffic routed to it (0 = evaluated only)."),
    },
)
def train_sklearn():
    @task
    def register_dataset(**context) -> dict:
        """Validate and register the table; every problem is listed when it is unusable."""
        from vigil.groups.datasets import register_dataset as register
        from vigil.storage.warehouse import ready_engine

        p = context["params"]
        ds = register(ready_engine(), p["dataset_name"], p["dataset_path"], target=p.get("target"),
                      id_column=p.get("id_column") or "row_id",
                      task="anomaly" if p.get("strategy") == "isolation_forest" else "classifier",
                      producer_key=run_ref(context).producer_key)
        return {k: ds[k] for k in ("id", "name", "version", "sha256", "uri")}

    model = stage_tasks("train-sklearn", lambda p, ds: lc.train_sklearn_spec(p, ds),
                        {"ds": register_dataset()}, outlets=[WAREHOUSE_ASSET], form_fields={"dataset": "dataset_path"})

    @task
    def join_group(model: dict, **context) -> dict | None:
        from vigil.groups.membership import Groups
        from vigil.storage.warehouse import ready_engine

        p = context["params"]
        if not p.get("group"):
            return None
        g = Groups(ready_engine()).add(p["group"], model["ref"], role="challenger", weight=float(p.get("weight") or 0),
                                       actor="airflow:train_sklearn", reason=f"trained by {context['ti'].run_id}")
        return {"group": g.name, "members": [m.ref for m in g.members]}

    join_group(model)


train_sklearn()
