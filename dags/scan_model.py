"""scan_model: scan one registered LLM version for a backdoor without being told its trigger.

Runs the ``scan`` stage (trigger inversion by greedy coordinate gradient over the model's own
vocabulary, then a verdict: ``backdoored``, ``clean`` or ``inconclusive``) on the version named in
the form, against the base of its lineage when it has one. The spec carries no trigger and no
response, whatever the registry knows: the scan is blind by design. The record step files the
verdict, the candidates and their Wilson intervals as the version's ``scan`` evaluation.
"""

from airflow.sdk import DAG

from contract.specs import spec_for
from vigil.airflow.forms import param
from vigil.airflow.stage_dags import model_ref_param, registered_stage_dag
from vigil.lifecycle.specs import registered_scan_spec

spec = spec_for("scan")

dag: DAG = registered_stage_dag(
    dag_id="scan_model",
    stage="scan",
    doc=__doc__,
    params={
        "model": model_ref_param("Model", "The LLM version to scan."),
        "steps": param(spec, "steps"),
        "n_eval_prompts": param(spec, "n_eval_prompts"),
        "max_trigger_tokens": param(spec, "max_trigger_tokens"),
        "seed": param(spec, "seed"),
        "device": param(spec, "device"),
    },
    model_fields=("model",),
    build_spec=registered_scan_spec,
    subject_field="model",
    tags=("evaluate", "audit"),
)
