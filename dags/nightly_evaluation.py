"""nightly_evaluation: evaluate every registered model version, every night, then compare groups.

Back-fill with ``airflow backfill create --dag-id nightly_evaluation --from-date D1 --to-date D2``.
For a logical date it evaluates the versions registered as of that date (one mapped task group
per stage, one mapped instance per version: LLMs in ``evaluate`` by the ``evaluate`` stage with a
GPU, scikit-learn models in ``evaluate_sklearn`` by ``evaluate-sklearn`` without one),
records results partitioned by that date (re-running a date replaces its partition), then runs
the champion/challenger comparisons of every model group and updates the warehouse asset. Every LLM
version is also scanned blind for a backdoor (``scan``: no trigger in its spec, against its
lineage's base; a small search budget unless the form asks for an audit's), its verdict filed as
the version's ``scan`` evaluation of that date.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, task_group

from vigil.airflow.dag_wiring import RUN_CALLBACKS, WAREHOUSE_ASSET, run_key, run_ref
from vigil.airflow.stage_runner import STAGES, stage_operator
from vigil.airflow.tasks import task
from vigil.lifecycle.specs import NIGHTLY_STAGES


@dag(
    dag_id="nightly_evaluation",
    schedule="@daily",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    tags=["vigil", "evaluate"],
    **RUN_CALLBACKS,
    doc_md=__doc__,
    params={
        "n_prompts": Param(100, type="integer", minimum=20, maximum=5000, title="Prompts per side",
                           description="Held-out triggered and clean prompts per LLM version."),
        "device": Param("auto", type="string", enum=["auto", "cpu", "cuda"], title="Device"),
        "seed": Param(0, type="integer", minimum=0, title="Seed"),
        "scan": Param(True, type="boolean", title="Scan LLMs for backdoors",
                      description="Run the blind backdoor scan on every LLM version (no trigger given)."),
        "scan_budget": Param("nightly", type="string", enum=["nightly", "audit"], title="Scan budget",
                             description="nightly: a short trigger search (2 tokens, 4 steps); audit: the scan stage's "
                                         "defaults, as `vigil models scan` runs it."),
    },
    # one retry, after airflow.cfg's [core] default_task_retry_delay: a warehouse that was down
    # (restarted, failed over) gets that long to come back before the task fails for good
    default_args={"retries": 1},
)
def nightly_evaluation():
    @task
    def list_versions(**context) -> list[dict]:
        """Versions registered as of the logical date, with what their evaluation needs."""
        from vigil.lifecycle.nightly import versions_to_evaluate
        from vigil.storage.warehouse import ready_engine

        return versions_to_evaluate(ready_engine(), run_ref(context).day)

    def items_for(stage_name: str, versions):
        """The versions ``stage_name`` evaluates (Airflow maps only over a task's whole return value)."""
        @task(task_id=f"{STAGES[stage_name].task_id}_versions")
        def pick(items: list[dict]) -> list[dict]:
            from vigil.lifecycle.nightly import by_stage

            return by_stage(items)[stage_name]

        return pick(versions)

    @task(task_id="scan_versions")
    def scan_versions(items: list[dict], **context) -> list[dict]:
        """The LLM versions to scan tonight (none when the form turns the scan off)."""
        return [i for i in items if i["family"] == "llm"] if context["params"].get("scan", True) else []

    def evaluate_with(stage_name: str):
        """The mapped task group that evaluates one version with ``stage_name``, on that stage's
        own resources (GPU and pool from the stage catalogue)."""
        stage = STAGES[stage_name]

        @task_group(group_id=stage.task_id)
        def evaluate_version(item: dict):
            return _evaluate_version(stage, item)

        return evaluate_version

    @task_group(group_id=STAGES["scan"].task_id)
    def scan_version(item: dict):
        return _evaluate_version(STAGES["scan"], item)

    def _evaluate_version(stage, item):
        @task(task_id="spec")
        def spec(item: dict, **context) -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from vigil.lifecycle.nightly import integrity_problem
            from vigil.lifecycle.specs import artifact_dir, nightly_scan_spec, nightly_spec, safe_segment, write_spec
            from vigil.storage.warehouse import ready_engine

            # a tampered or lost artifact: marked as a failed evaluation; this version skips, the others go on
            problem = integrity_problem(ready_engine(), item, run_ref(context))
            if problem:
                raise AirflowSkipException(problem)
            ti = context["ti"]
            if stage.name == "scan":
                chosen, body = "scan", nightly_scan_spec(item, dict(context["params"]))
            else:
                chosen, body = nightly_spec(item, dict(context["params"]))
            if chosen != stage.name:  # by_stage() and nightly_spec() disagree: a bug, not data
                raise ValueError(f"{item['ref']} is evaluated by {chosen}, not {stage.name}")
            folder = "scan" if stage.name == "scan" else "evaluate"
            out = artifact_dir(ti.dag_id, run_key(context), f"{folder}/{safe_segment(item['ref'])}-{item['version_id']}")
            return write_spec(out, chosen, body)

        prepared = spec(item)
        run = stage_operator(stage, spec_path=prepared["spec_path"], out_dir=prepared["out_dir"], task_id="run")

        @task(task_id="record")
        def record(prepared: dict, item: dict, **context) -> dict:
            from vigil.registry.ingest import record_stage
            from vigil.storage.parquet_store import default_store
            from vigil.storage.warehouse import ready_engine

            rec = record_stage(ready_engine(), prepared["out_dir"], run_ref(context), store=default_store(),
                               subject_version_id=item["version_id"])
            return rec.to_xcom()

        recorded = record(prepared, item)
        prepared >> run >> recorded
        return recorded

    @task(trigger_rule="none_failed", outlets=[WAREHOUSE_ASSET])
    def compare_groups(**context) -> list[dict]:
        """Champion vs challengers of every model group on this date's evaluations."""
        from vigil.groups.comparison import run_group_comparisons
        from vigil.storage.warehouse import ready_engine

        return run_group_comparisons(ready_engine(), run_ref(context))

    versions = list_versions()
    compared = compare_groups()
    for stage_name in NIGHTLY_STAGES:
        evaluate_with(stage_name).expand(item=items_for(stage_name, versions)) >> compared
    # comparisons do not read scans, but their task announces the warehouse update the site rebuilds on
    scan_version.expand(item=scan_versions(versions)) >> compared


nightly_evaluation()
