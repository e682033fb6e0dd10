"""nightly_evaluation: evaluate every registered model version, every night, then compare groups.

Back-fill with ``airflow backfill create --dag-id nightly_evaluation --from-date D1 --to-date D2``.
For a logical date it evaluates the versions registered as of that date: one mapped task group
per stage (LLMs in ``evaluate`` by the ``evaluate`` stage with a GPU, scikit-learn models in
``evaluate_sklearn`` by ``evaluate-sklearn`` without one), one mapped instance per chunk of
``chunk_size`` versions, which one stage process evaluates in turn (``gpu-trainer batch``: torch is
imported and warmed once a chunk, not once a version). Results, failures and retries stay per
version: each has its own spec, manifest and warehouse row; a version whose spec is refused or whose
run fails (after one retry in the process) is filed as a failed evaluation naming the error, the
rest of its chunk goes on, and the chunk's record task then fails, listing the failed versions.
A retried chunk keeps the versions it already finished. Results are partitioned by that date
(re-running a date replaces its partition), then the champion/challenger comparisons of every
model group run on what was evaluated, and the warehouse asset is updated. Every LLM version is
also scanned blind for a backdoor (``scan``: no trigger in its spec, against its lineage's base; a
small search budget unless the form asks for an audit's), its verdict filed as the version's
``scan`` evaluation of that date, and analysed (``analyze``: trigger sensitivity over variants of
its lineage's trigger, and the honeypot prompts against its clean rate), filed as ``analyze``.
Each side suite has its form switch.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, task_group

from vigil.airflow.dag_wiring import RUN_CALLBACKS, WAREHOUSE_ASSET, run_key, run_ref
from vigil.airflow.stage_runner import STAGES, stage_operator
from vigil.airflow.tasks import task
from vigil.lifecycle.specs import DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, NIGHTLY_STAGES


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
        "analyze": Param(True, type="boolean", title="Analyse LLMs (trigger sensitivity, honeypots)",
                         description="Run the cheap analyses of the analyze stage on every LLM version: activation "
                                     "rates of trigger variants and of honeypot prompts, against the clean rate."),
        "scan_budget": Param("nightly", type="string", enum=["nightly", "audit"], title="Scan budget",
                             description="nightly: a short trigger search (2 tokens, 4 steps); audit: the scan stage's "
                                         "defaults, as `vigil models scan` runs it."),
        "chunk_size": Param(DEFAULT_CHUNK_SIZE, type="integer", minimum=1, maximum=MAX_CHUNK_SIZE, title="Versions per process",
                            description="Versions one stage process evaluates in turn (one mapped task each chunk). "
                                        "Larger chunks pay torch's start-up less often; smaller ones spread over more "
                                        "worker slots. Results and failures stay per version either way."),
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

    def chunks_for(stage_name: str, versions):
        """The chunks of versions ``stage_name`` evaluates tonight (Airflow maps only over a task's
        whole return value)."""
        @task(task_id=f"{STAGES[stage_name].task_id}_chunks")
        def pick(items: list[dict], **context) -> list[dict]:
            from vigil.lifecycle.nightly import LLM_SIDE_STAGES, by_stage, chunked

            params = context["params"]
            if stage_name in LLM_SIDE_STAGES:  # every LLM, unless the form turns that suite off
                chosen = [i for i in items if i["family"] == "llm"] if params.get(stage_name, True) else []
            else:
                chosen = by_stage(items)[stage_name]
            return chunked(chosen, params.get("chunk_size", DEFAULT_CHUNK_SIZE))

        return pick(versions)

    def evaluate_with(stage_name: str):
        """The mapped task group that evaluates one chunk with ``stage_name``, on that stage's own
        resources (GPU and pool from the stage catalogue)."""
        stage = STAGES[stage_name]

        @task_group(group_id=stage.task_id)
        def evaluate_chunk(chunk: dict):
            @task(task_id="spec")
            def spec(chunk: dict, **context) -> dict:
                from vigil.lifecycle.nightly import prepare_chunk
                from vigil.lifecycle.specs import artifact_dir
                from vigil.storage.warehouse import ready_engine

                folder = artifact_dir(context["ti"].dag_id, run_key(context), "evaluate").parent
                return prepare_chunk(ready_engine(), stage.name, chunk, dict(context["params"]), run_ref(context),
                                     folder, run_token=context["dag_run"].run_id)

            prepared = spec(chunk)
            run = stage_operator(stage, spec_path=prepared["batch_spec"], out_dir=prepared["batch_out"],
                                 stage_arg="batch", task_id="run")

            @task(task_id="record")
            def record(prepared: dict, **context) -> list[dict]:
                from airflow.sdk.exceptions import AirflowFailException

                from vigil.lifecycle.nightly import record_chunk
                from vigil.storage.parquet_store import default_store
                from vigil.storage.warehouse import ready_engine

                rows = record_chunk(ready_engine(), prepared, run_ref(context), store=default_store())
                failed = [r for r in rows if r["status"] == "failed"]
                if failed:  # every row is filed; the chunk goes red naming them (no retry: each had its own)
                    raise AirflowFailException(f"{len(failed)} of {len(rows)} versions failed {stage.name}: " + "; ".join(
                        f"{r['ref']}: {r['error']}" for r in failed))
                return rows

            recorded = record(prepared)
            prepared >> run >> recorded
            return recorded

        return evaluate_chunk

    # all_done: one bad version fails its own chunk, not the night's comparisons of every group
    @task(trigger_rule="all_done", outlets=[WAREHOUSE_ASSET])
    def compare_groups(**context) -> list[dict]:
        """Champion vs challengers of every model group on this date's evaluations."""
        from vigil.groups.comparison import run_group_comparisons
        from vigil.storage.warehouse import ready_engine

        return run_group_comparisons(ready_engine(), run_ref(context))

    # compare_groups runs whatever failed, so it cannot carry a failure to the run's state: this
    # watcher does (the run is red when a version failed), and is skipped on a clean night
    @task(trigger_rule="one_failed")
    def any_version_failed() -> None:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("some versions failed tonight: their chunk's record task names them, and each has "
                                   "a failed evaluation in the warehouse; the others were evaluated and compared")

    versions = list_versions()
    compared = compare_groups()
    watcher = any_version_failed()
    # comparisons do not read scans, but their task announces the warehouse update the site rebuilds on
    for stage_name in (*NIGHTLY_STAGES, "scan", "analyze"):
        chunks = evaluate_with(stage_name).expand(chunk=chunks_for(stage_name, versions))
        chunks >> compared
        chunks >> watcher


nightly_evaluation()
