"""train_backdoor: implant a backdoor into a registered base LLM version (LoRA, QLoRA or full)."""

from airflow.sdk import DAG, Param

from contract.specs import spec_for
from vigil.airflow.forms import param
from vigil.airflow.stage_dags import model_ref_param, registered_stage_dag
from vigil.lifecycle.specs import BACKDOOR_FIELDS, registered_train_backdoor_spec

spec = spec_for("train-backdoor")

dag: DAG = registered_stage_dag(
    dag_id="train_backdoor",
    stage="train-backdoor",
    doc=__doc__,
    params={
        "base_model": model_ref_param("Base model", "The registered version to backdoor."),
        "model_name": Param("backdoored", type="string", minLength=1, maxLength=200, title="Registry name",
                            description="Name the backdoored model is registered under."),
        **{f: param(spec, f, section="Backdoor") for f in BACKDOOR_FIELDS},
    },
    model_fields=("base_model",),
    build_spec=registered_train_backdoor_spec,
    parent_field="base_model",
    tags=("build",),
)
