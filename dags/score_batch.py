"""score_batch: score a Parquet batch with a model group, through its traffic split.

Each row needs a ``request_id`` plus the features of the group's scikit-learn models, or a
``prompt`` for an LLM group. A row is routed to one member by a deterministic hash of the group
and its request id, in proportion to the members' traffic weights (the same id always reaches
the same member); in shadow mode every live member scores every row and the routed member's
answer is marked ``served``. Every prediction lands in the group's ``inference_log_<slug>``
table and in Parquet (``inference_log/date=<day>/key=<slug>.<run>``). Re-running a run replaces
its rows.

- scikit-learn members score in the ``score`` task, with SHAP values per prediction.
- LLM members each run the ``score-llm`` stage on their rows (a mapped stage task: a subprocess
  locally, the gpu-trainer container in production): greedy generation, whether it shows the
  lineage's backdoor behaviour, and the deception probe's score, flag and per-unit attribution.

Two ways in: trigger with ``group`` and ``batch_path``, or emit an event on the inbox asset
``vigil_score_inbox`` whose ``extra`` holds the same keys (``group``, ``batch_path``, optional
``labels_path``, ``shadow``, ``explain``); every event that triggered a run is scored.

Labels that arrive later: trigger again with ``labels_path`` (``request_id``, ``label``) to join
them by request id; live metrics then appear in ``vigil groups live NAME`` and on the group page.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, task_group

from vigil.airflow.dag_wiring import SCORE_INBOX_ASSET, WAREHOUSE_ASSET, run_ref
from vigil.airflow.stage_runner import STAGES, stage_operator
from vigil.airflow.tasks import task


@dag(
    dag_id="score_batch",
    schedule=[SCORE_INBOX_ASSET],
    start_date=datetime(2026, 11, 1),
    catchup=False,
    tags=["vigil", "groups", "inference"],
    doc_md=__doc__,
    params={
        # no minLength: runs started by the inbox asset carry their group in the event instead
        "group": Param("", type="string", maxLength=100, title="Model group",
                       description="Name of the model group (as in `vigil groups list`)."),
        "batch_path": Param("", type="string", title="Batch (Parquet)",
                            description="Path of a Parquet file with request_id and the model features (LLM groups: "
                                        "prompt). Leave empty to only join labels."),
        "shadow": Param(False, type="boolean", title="Shadow mode",
                        description="Every member scores every row (the routed member's answer is served). "
                                    "When off, the group's own shadow setting still applies."),
        "explain": Param(True, type="boolean", title="SHAP values",
                         description="Store SHAP values per prediction (TreeExplainer/LinearExplainer; LLMs: the "
                                     "probe's per-unit attribution)."),
        "labels_path": Param("", type="string", title="Labels (Parquet)",
                             description="Optional Parquet with request_id and label, joined onto the log."),
    },
)
def score_batch():
    @task
    def requests(**context) -> list[dict]:
        """What to score: the trigger form, or the extras of the inbox events behind this run."""
        from vigil.groups.inference_log import requests_from

        events = context.get("triggering_asset_events") or {}
        extras = [dict(e.extra or {}) for a in events if a.name == SCORE_INBOX_ASSET.name for e in events[a]]
        return requests_from(dict(context["params"]), extras)

    @task(outlets=[WAREHOUSE_ASSET])
    def score(reqs: list[dict], **context) -> list[dict]:
        """Scores scikit-learn groups here; returns the LLM members' score-llm jobs."""
        import json
        import logging

        from vigil.airflow.dag_wiring import run_key
        from vigil.groups.inference_log import score_batch as run_scoring
        from vigil.lifecycle.specs import artifact_dir
        from vigil.storage.warehouse import ready_engine

        jobs = []
        for i, r in enumerate(reqs):
            if not r["batch_path"]:
                continue
            # one producer key per request: two inbox events in one run must not share a Parquet partition
            out = run_scoring(ready_engine(), r["group"], r["batch_path"], run_ref(context, f"score.{i}"),
                              shadow=r["shadow"], explain=r["explain"],
                              llm_dir=artifact_dir("score_batch", run_key(context), f"score-llm/{i}"))
            out.pop("timings", None)
            jobs += [dict(j, group=r["group"]) for j in out.pop("llm_jobs", [])]
            logging.getLogger(__name__).info("scored: %s", json.dumps(out, default=str))
        return jobs

    @task_group(group_id="score_llm")
    def score_llm(job: dict):
        @task(task_id="prepare")
        def prepare(job: dict) -> dict:
            # the job as a task output, so the stage operator below templates its keys from XCom
            # (prepared["spec_path"]), the same wiring as nightly_evaluation's spec task
            return job

        prepared = prepare(job)
        run = stage_operator(STAGES["score-llm"], spec_path=prepared["spec_path"], out_dir=prepared["out_dir"],
                             task_id="run")

        @task(task_id="record", outlets=[WAREHOUSE_ASSET])
        def record(prepared: dict, **context) -> dict:
            from vigil.groups.inference_log import record_llm_job
            from vigil.storage.warehouse import ready_engine

            return record_llm_job(ready_engine(), prepared["group"], prepared, run_ref(context))

        recorded = record(prepared)
        prepared >> run >> recorded
        return recorded

    @task(trigger_rule="none_failed", outlets=[WAREHOUSE_ASSET])
    def join_labels(reqs: list[dict]) -> list[dict]:
        from vigil.groups.inference_log import ingest_labels
        from vigil.storage.warehouse import ready_engine

        out = []
        for r in reqs:
            if r["labels_path"]:
                out.append({"group": r["group"], **ingest_labels(ready_engine(), r["group"], r["labels_path"])})
        return out

    reqs = requests()
    scored = score(reqs)
    scored_llm = score_llm.expand(job=scored)
    labels = join_labels(reqs)
    scored >> labels
    scored_llm >> labels


score_batch()
