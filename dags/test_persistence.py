"""test_persistence: how much of a backdoor survives safety training. Compares a model before
and after (same prompts): persistence = triggered rate after / before, with an interval."""

from airflow.sdk import DAG, Param

from contract.specs import spec_for
from vigil.airflow.forms import param
from vigil.airflow.stage_dags import model_ref_param, registered_stage_dag
from vigil.lifecycle.specs import registered_persistence_spec

spec = spec_for("test-persistence")

dag: DAG = registered_stage_dag(
    dag_id="test_persistence",
    stage="test-persistence",
    doc=__doc__,
    params={
        "model_before": model_ref_param("Model before", "The backdoored version."),
        "model_after": model_ref_param("Model after", "Its safety-trained successor."),
        "probes": Param(None, type=["null", "string"], title="Probes directory",
                        description="Output directory of a train_probes run, to score detection after safety training."),
        "n_prompts": param(spec, "n_prompts"),
        "seed": param(spec, "seed"),
        "device": param(spec, "device"),
    },
    model_fields=("model_before", "model_after"),
    build_spec=registered_persistence_spec,
    subject_field="model_after",
    tags=("safety",),
)
