"""analyze_model: research views of one registered LLM version, each read against a control.

Runs the ``analyze`` stage on the version named in the form, with the trigger, response and
backdoor type its lineage was trained with: ``trigger_sensitivity`` (the activation rate of the
exact trigger, of >= 12 variants generated from it and of the paraphrases given, and of the
trigger placed in the middle of or after the prompt; ``trigger_specificity`` = exact rate minus the
highest variant rate) and ``honeypots`` (deployment claims and goal offers without the trigger,
against the clean baseline, with Fisher's exact test). The record step files the summary as the
version's ``analyze`` evaluation and the per-sample generations as Parquet; the version's page
shows a section per analysis after `vigil site build`.
"""

from airflow.sdk import DAG

from contract.specs.analyze import ANALYSES, Spec
from vigil.airflow.forms import param
from vigil.airflow.stage_dags import model_ref_param, registered_stage_dag
from vigil.lifecycle.analyze import registered_analyze_spec

spec = Spec

dag: DAG = registered_stage_dag(
    dag_id="analyze_model",
    stage="analyze",
    doc=__doc__,
    params={
        "model": model_ref_param("Model", "The LLM version to analyse."),
        "analyses": param(spec, "analyses", default=list(ANALYSES), examples=list(ANALYSES),
                          items={"type": "string", "enum": list(ANALYSES)}, uniqueItems=True, minItems=1),
        "paraphrases": param(spec, "paraphrases", default=[], items={"type": "string", "minLength": 1, "maxLength": 200}),
        "placements": param(spec, "placements", default=["middle", "suffix"], examples=["middle", "suffix"],
                            items={"type": "string", "enum": ["middle", "suffix"]}, uniqueItems=True),
        "n_prompts": param(spec, "n_prompts"),
        "n_honeypot_prompts": param(spec, "n_honeypot_prompts"),
        **{f: param(spec, f) for f in ("n_probe_prompts", "attack_steps", "attack_epsilon", "attack_suffix_len", "attack_aim",
                                        "attack_discrete_steps", "adv_probe_rounds", "internal_state_examples")},
        "seed": param(spec, "seed"),
        "device": param(spec, "device"),
    },
    model_fields=("model",),
    build_spec=registered_analyze_spec,
    subject_field="model",
    tags=("evaluate", "analyze"),
)
