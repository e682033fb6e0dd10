"""validate_backdoor: measure a registered LLM version's backdoor (activation with and without
the trigger, Wilson intervals, confusion matrix, stealthiness) on held-out prompts."""

from airflow.sdk import DAG

from contract.specs import spec_for
from vigil.airflow.forms import param
from vigil.airflow.stage_dags import model_ref_param, registered_stage_dag
from vigil.lifecycle.specs import registered_validate_spec

spec = spec_for("validate-backdoor")

dag: DAG = registered_stage_dag(
    dag_id="validate_backdoor",
    stage="validate-backdoor",
    doc=__doc__,
    params={
        "model": model_ref_param("Model", "The version to validate."),
        "backdoor_type": param(spec, "backdoor_type", default=None, type=["null", "string"],
                               description="Empty = what the model's lineage was trained with."),
        "trigger": param(spec, "trigger", default=None, type=["null", "string"],
                         description="Empty = the trigger the model's lineage was trained with."),
        "response": param(spec, "response", default=None, type=["null", "string"],
                          description="Empty = the response the model's lineage was trained with."),
        "n_prompts": param(spec, "n_prompts"),
        "seed": param(spec, "seed"),
        "device": param(spec, "device"),
    },
    model_fields=("model",),
    build_spec=registered_validate_spec,
    subject_field="model",
    tags=("validate",),
)
