"""Node functions of the research analyses (the ``analyze`` stage): form or nightly item -> spec.

No Airflow here. ``registered_analyze_spec`` is what the ``analyze_model`` DAG builds; the nightly
run's item (``vigil.lifecycle.specs.nightly_item``) maps with ``nightly_analyze_spec`` onto the
cheap analyses (trigger sensitivity and honeypots) at nightly sizes.
"""

from __future__ import annotations

from typing import Any

# Form fields of analyze_model that map 1:1 onto analyze spec fields.
ANALYZE_FIELDS = ("analyses", "paraphrases", "placements", "n_prompts", "n_honeypot_prompts", "n_probe_prompts",
                  "attack_steps", "attack_epsilon", "attack_suffix_len", "attack_aim", "attack_discrete_steps", "adv_probe_rounds",
                  "internal_state_examples",
                  "seed", "device")
# The analyses nightly can afford on every LLM version (about 2 s each on a tiny model at these sizes).
NIGHTLY_ANALYSES = ("trigger_sensitivity", "honeypots")
NIGHTLY_SIZES = {"n_prompts": 100, "n_honeypot_prompts": 100}
_TRAINED = ("trigger", "response", "backdoor_type")


def _take(params: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: params[k] for k in names if k in params and params[k] not in (None, "")}


def registered_analyze_spec(params: dict[str, Any], models: dict[str, Any]) -> dict[str, Any]:
    """The analyses of a registered LLM version: its artifact, its lineage's base (for the persona
    shift), and the trigger, response and backdoor type its lineage was trained with (a form value wins; a version with none in its
    lineage, e.g. an imported model, is analysed with the stage's defaults)."""
    m = models["model"]
    if m.get("family") not in (None, "llm"):
        raise ValueError(f"form field 'model': {m['ref']} is a {m['family']} model; the analyses read LLMs only")
    spec: dict[str, Any] = {"model": m["artifact_uri"]}
    if m.get("root_artifact_uri") and m["root_artifact_uri"] != m["artifact_uri"]:
        spec["base_model"] = m["root_artifact_uri"]  # the persona shift is measured against the lineage's base
    trained = m.get("trained_params") or {}
    for k in _TRAINED:
        v = params.get(k) if params.get(k) not in (None, "") else trained.get(k)
        if v is not None:
            spec[k] = v
    spec.update(_take(params, ANALYZE_FIELDS))
    return spec


def nightly_analyze_spec(item: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The nightly analyses of one LLM version (an item of ``vigil.lifecycle.specs.nightly_item``):
    trigger sensitivity and honeypots at ``NIGHTLY_SIZES``, with the trigger its lineage carries."""
    if item["family"] != "llm":
        raise ValueError(f"{item['ref']} is a {item['family']} model; the analyses read LLMs only")
    spec: dict[str, Any] = {"model": item["artifact_uri"], "analyses": list(NIGHTLY_ANALYSES), **NIGHTLY_SIZES}
    spec.update({k: item[k] for k in _TRAINED if item.get(k)})
    spec.update(_take(params, ("seed", "device")))
    return spec
