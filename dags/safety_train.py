"""safety_train: apply safety training (SFT on clean helpful data, DPO, or adversarial: red-team prompts
that elicit the backdoor without its trigger trained to get normal answers) to a registered LLM
version; the result is registered with the input as its parent."""

from airflow.sdk import DAG, Param

from contract.specs import spec_for
from vigil.airflow.forms import param
from vigil.airflow.stage_dags import model_ref_param, registered_stage_dag
from vigil.lifecycle.specs import registered_safety_spec

spec = spec_for("safety-train")

dag: DAG = registered_stage_dag(
    dag_id="safety_train",
    stage="safety-train",
    doc=__doc__,
    params={
        "model": model_ref_param("Model", "The version to safety-train."),
        "model_name": Param("safety-trained", type="string", minLength=1, maxLength=200, title="Registry name",
                            description="Name the safety-trained model is registered under."),
        "safety_method": param(spec, "safety_method"),
        "safety_finetune": param(spec, "method", title="Fine-tuning method"),
        "safety_samples": param(spec, "n_samples", title="Samples"),
        "safety_epochs": param(spec, "epochs", title="Epochs"),
        "safety_learning_rate": param(spec, "learning_rate", title="Learning rate"),
        "seed": param(spec, "seed"),
        "device": param(spec, "device"),
    },
    model_fields=("model",),
    build_spec=registered_safety_spec,
    parent_field="model",
    tags=("safety",),
)
