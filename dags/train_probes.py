"""train_probes: train deception probes on a registered LLM version (residual stream, every layer).

Scores the generic contrast-pair probe (no knowledge of the trigger) and the supervised,
trigger-visible probe; the control model (default: the root of the version's lineage, i.e. its
clean base) is scored with the same probes, so detection stands against chance.
"""

from airflow.sdk import DAG

from contract.specs import spec_for
from vigil.airflow.forms import param
from vigil.airflow.stage_dags import model_ref_param, registered_stage_dag
from vigil.lifecycle.specs import registered_probes_spec

spec = spec_for("train-probes")

dag: DAG = registered_stage_dag(
    dag_id="train_probes",
    stage="train-probes",
    doc=__doc__,
    params={
        "model": model_ref_param("Model", "The version to probe."),
        "control_model": model_ref_param("Control model", "Clean control; empty = the root of the model's lineage.",
                                         required=False),
        "trigger": param(spec, "trigger", default=None, type=["null", "string"],
                         description="Empty = the trigger the model's lineage was trained with."),
        "n_prompts": param(spec, "n_prompts"),
        "seed": param(spec, "seed"),
        "device": param(spec, "device"),
    },
    model_fields=("model", "control_model"),
    build_spec=registered_probes_spec,
    subject_field="model",
    tags=("detect",),
)
