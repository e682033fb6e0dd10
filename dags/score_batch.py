"""score_batch: score a Parquet batch with a model group, through its traffic split.

Each row needs a ``request_id`` and the features of the group's models. A row is routed to one
member by a deterministic hash of the group and its request id, in proportion to the members'
traffic weights (the same id always reaches the same member); in shadow mode every live member
scores every row and the routed member's answer is marked ``served``. Every prediction (inputs,
output, score, SHAP values as JSON) lands in the group's ``inference_log_<slug>`` table and in
Parquet (``inference_log/date=<day>/key=<slug>.<run>``). Re-running a run replaces its rows.

Labels that arrive later: trigger again with ``labels_path`` (``request_id``, ``label``) to join
them by request id; live metrics then appear in ``vigil groups live NAME``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, task

from vigil.dag_wiring import WAREHOUSE_ASSET


@dag(
    dag_id="score_batch",
    schedule=None,
    start_date=datetime(2026, 11, 1),
    catchup=False,
    tags=["vigil", "groups", "inference"],
    doc_md=__doc__,
    params={
        "group": Param("", type="string", minLength=1, maxLength=100, title="Model group",
                       description="Name of the model group (as in `vigil groups list`)."),
        "batch_path": Param("", type="string", title="Batch (Parquet)",
                            description="Path of a Parquet file with request_id and the model features. "
                                        "Leave empty to only join labels."),
        "shadow": Param(False, type="boolean", title="Shadow mode",
                        description="Every member scores every row (the routed member's answer is served). "
                                    "When off, the group's own shadow setting still applies."),
        "explain": Param(True, type="boolean", title="SHAP values",
                         description="Store SHAP values per prediction (TreeExplainer/LinearExplainer)."),
        "labels_path": Param("", type="string", title="Labels (Parquet)",
                             description="Optional Parquet with request_id and label, joined onto the log."),
    },
)
def score_batch():
    @task(outlets=[WAREHOUSE_ASSET])
    def score(**context) -> dict:
        from vigil.dag_wiring import run_ref
        from vigil.inference_log import score_batch as run_scoring
        from vigil.warehouse import ready_engine

        p = context["params"]
        if not p["batch_path"]:
            return {"skipped": "no batch_path given"}
        out = run_scoring(ready_engine(), p["group"], p["batch_path"], run_ref(context),
                          shadow=True if p["shadow"] else None, explain=bool(p["explain"]))
        out.pop("timings", None)
        return out

    @task(outlets=[WAREHOUSE_ASSET])
    def join_labels(scored: dict, **context) -> dict:
        from vigil.inference_log import ingest_labels, live_metrics
        from vigil.warehouse import ready_engine

        p = context["params"]
        if not p["labels_path"]:
            return {"skipped": "no labels_path given"}
        eng = ready_engine()
        joined = ingest_labels(eng, p["group"], p["labels_path"])
        live = live_metrics(eng, p["group"])
        return {**joined, "decisions": [(c["challenger"], c.get("decision")) for c in live["comparisons"]]}

    join_labels(score())


score_batch()
