"""evaluate_model: run the nightly evaluation suite on one registered LLM version now."""

from airflow.sdk import DAG

from contract.specs import spec_for
from vigil.airflow.forms import param
from vigil.airflow.stage_dags import model_ref_param, registered_stage_dag
from vigil.lifecycle.specs import registered_evaluate_spec

spec = spec_for("evaluate")

dag: DAG = registered_stage_dag(
    dag_id="evaluate_model",
    stage="evaluate",
    doc=__doc__,
    params={
        "model": model_ref_param("Model", "The version to evaluate."),
        "n_prompts": param(spec, "n_prompts"),
        "seed": param(spec, "seed"),
        "device": param(spec, "device"),
    },
    model_fields=("model",),
    build_spec=registered_evaluate_spec,
    subject_field="model",
    tags=("evaluate",),
)
