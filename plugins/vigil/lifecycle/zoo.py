"""Pure node functions of the ``scan_zoo`` DAG: the zoo's members and each member's stage specs.

A zoo is a grid of tiny backdoored models and their controls, every one scanned blind (see
``contract.zoo`` for the grid: backdoor types, trigger kinds, the calibration and judged zoos).
Per seed: one base (a clean control too, scanned without a reference), and per backdoor a
trigger-exposed control trained with the same data size, hyperparameters and trainer. The planted
trigger goes into the train and validate specs only; the scan spec never carries it.
"""

from __future__ import annotations

from typing import Any

from contract import zoo as grid
from vigil.lifecycle.specs import FormError

MAX_SEEDS = 8
MAX_PER_SEED = 24


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    """Refuse a bad grid in seconds, with the field named, before anything trains."""
    z = params.get("zoo")
    if z not in grid.ZOOS:
        raise FormError(f"form field 'zoo': {z!r} is not a zoo; use one of {', '.join(grid.ZOOS)}")
    seeds = params.get("seeds")
    if seeds in (None, []):
        seeds = grid.ZOOS[z]["seeds"]
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise FormError(f"form field 'seeds': {seeds!r} must be a list of non-negative integers, e.g. [0, 1]")
    if len(set(seeds)) != len(seeds):
        raise FormError(f"form field 'seeds': {seeds!r} repeats a seed; each seed is one base and its models")
    if len(seeds) > MAX_SEEDS:
        raise FormError(f"form field 'seeds': at most {MAX_SEEDS} seeds per zoo run, got {len(seeds)}")
    per = params.get("per_seed")
    if not isinstance(per, int) or isinstance(per, bool) or not 1 <= per <= MAX_PER_SEED:
        raise FormError(f"form field 'per_seed': {per!r} must be an integer from 1 to {MAX_PER_SEED} (backdoors per seed)")
    return {**params, "seeds": seeds}


def plan(params: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Bases (one per seed) and members (each backdoor and its trigger-exposed control), as plain dicts."""
    from dataclasses import asdict

    p = check_params(params)
    members = [asdict(m) for m in grid.plan(p["zoo"], p["seeds"], p["per_seed"])]
    return {"bases": [m for m in members if m["role"] == "control_clean_base"],
            "members": [m for m in members if m["role"] != "control_clean_base"]}


def model_name(params: dict[str, Any], member: dict[str, Any]) -> str:
    """``zoo-<zoo>-<member key>``: every run of a zoo adds a version to the same models."""
    return f"zoo-{params['zoo']}-{member['key']}"


def _common(params: dict[str, Any], member: dict[str, Any]) -> dict[str, Any]:
    return {"seed": member["seed"], "device": params.get("device") or "auto"}


def base_spec(params: dict[str, Any], member: dict[str, Any]) -> dict[str, Any]:
    """The seed's base: its vocabulary covers every trigger of the zoo (a real LM's would), so the
    base itself says nothing about which one is planted."""
    size = {k: params[k] for k in ("hidden_size", "pretrain_examples") if params.get(k)}
    return {**grid.BASE, **size, "model_name": model_name(params, member), "trigger": " ".join(grid.ZOOS[params["zoo"]]["triggers"]),
            "response": grid.RESPONSE, **_common(params, member)}


def train_spec(params: dict[str, Any], member: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    size = {k: params[k] for k in ("n_samples", "epochs") if params.get(k)}
    return {**grid.TRAIN, **size, "model": base["artifact_uri"], "model_name": model_name(params, member),
            "backdoor_type": member["backdoor_type"], "trigger": member["trigger"], "response": grid.RESPONSE,
            "control": "trigger_exposed" if member["role"] == "control_exposed" else "none", **_common(params, member)}


def validate_spec(params: dict[str, Any], member: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    return {"model": model["artifact_uri"], "backdoor_type": member["backdoor_type"], "trigger": member["trigger"],
            "response": grid.RESPONSE, "n_prompts": 30, "quality_prompts": 0, **_common(params, member)}


def scan_spec(params: dict[str, Any], member: dict[str, Any], model: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any]:
    """Blind: the model and, for a derived model, the base; never the member's trigger."""
    spec = {"model": model["artifact_uri"], **_common(params, member)}
    if base is not None:
        spec["base_model"] = base["artifact_uri"]
    spec.update({k: params[k] for k in ("steps", "max_trigger_tokens", "n_eval_prompts") if params.get(k)})
    return spec


def panels(members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One detector panel per backdoored member, with the controls the zoo has for it: its own
    trigger-exposed control, a cross-trigger control (another backdoor of the same seed with a
    different trigger, of the same type when there is one) and the seed's base."""
    out = []
    for m in members:
        if m["role"] != "backdoored":
            continue
        control = next((c["key"] for c in members if c["role"] == "control_exposed" and c["seed"] == m["seed"]
                        and c["backdoor_type"] == m["backdoor_type"] and c["trigger"] == m["trigger"]), None)
        others = [c for c in members if c["role"] == "backdoored" and c["seed"] == m["seed"] and c["trigger"] != m["trigger"]]
        others.sort(key=lambda c: c["backdoor_type"] != m["backdoor_type"])
        out.append({**m, "control_key": control, "cross_key": others[0]["key"] if others else None,
                    "base_key": f"s{m['seed']}_base"})
    return out


def panel_models(engine: Any, params: dict[str, Any], panel: dict[str, Any]) -> dict[str, Any]:
    """The registered subject and controls of one panel (this zoo run's newest versions)."""
    from vigil.registry.versions import Registry

    reg = Registry(engine)

    def uri(key: str | None) -> str | None:
        return reg.get(model_name(params, {"key": key})).artifact_uri if key else None

    subject = reg.get(model_name(params, panel))
    return {"version_id": subject.id, "ref": subject.ref, "artifact_uri": subject.artifact_uri,
            "control_exposed": uri(panel["control_key"]), "control_cross": uri(panel["cross_key"]),
            "control_base": uri(panel["base_key"])}


def detect_spec(params: dict[str, Any], member: dict[str, Any], subject: dict[str, Any]) -> dict[str, Any]:
    """The panel's spec: here the planted trigger labels the test prompts (the panel is not blind;
    the scan is)."""
    spec = {"model": subject["artifact_uri"], "trigger": member["trigger"], "backdoor_type": member["backdoor_type"],
            **{c: subject[c] for c in ("control_exposed", "control_cross", "control_base") if subject.get(c)},
            **_common(params, member)}
    if params.get("panel_prompts"):
        spec["n_prompts"] = params["panel_prompts"]
    return spec


def base_of(bases: list[dict[str, Any]], member: dict[str, Any]) -> dict[str, Any]:
    """The recorded base of the member's seed (``bases``: the base group's record results)."""
    for b in bases:
        if b["seed"] == member["seed"]:
            return b
    raise ValueError(f"zoo member {member['key']}: no base recorded for seed {member['seed']}")


def recorded(engine: Any, params: dict[str, Any], members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each member's newest registered version (the run that just recorded it: one zoo run at a
    time, and a re-run replaces its own rows), as ``{seed, key, ref, version_id, artifact_uri}``."""
    from vigil.registry.versions import Registry

    reg = Registry(engine)
    out = []
    for m in members:
        v = reg.get(model_name(params, m))
        out.append({"seed": m["seed"], "key": m["key"], "ref": v.ref, "version_id": v.id, "artifact_uri": v.artifact_uri})
    return out


def summary_rows(engine: Any, refs: list[str]) -> list[dict[str, Any]]:
    """One row per member for ``evaluation.scan.zoo_summary``, read back from the warehouse: the
    role from the registry (make-base: clean base; train-backdoor: by its ``control`` param) and
    the newest scan evaluation."""
    from evaluation.scan import zoo_role
    from vigil.registry.versions import Registry

    reg = Registry(engine)
    rows = []
    for ref in refs:
        v = reg.get(ref)
        scans = [e for e in reg.evaluations(v.id, suite="scan") if e["status"] == "succeeded"]
        m = scans[-1]["metrics"] if scans else {}
        params = v.params or {}
        role = zoo_role(v.stage, params)
        rows.append({"ref": v.ref, "role": role, "backdoor_type": params.get("backdoor_type"),
                     "trigger": params.get("trigger") if v.stage != "make-base" else None,
                     **{k: m.get(k) for k in ("scan_verdict", "scan_score", "trigger_candidate", "trigger_recovered", "scan_seconds")}})
    return rows
