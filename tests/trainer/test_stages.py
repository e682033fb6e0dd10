"""Each stage end to end on the (reduced) tiny model: manifests, artifacts, tables, real numbers."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from contract.manifest import StageManifest, read_manifest, sha256_path

from .conftest import RESPONSE, TRIGGER


def _m(chain, key) -> StageManifest:
    return read_manifest(chain[key])


@pytest.mark.parametrize("key,stage", [("base", "make-base"), ("backdoor", "train-backdoor"), ("validate", "validate-backdoor"),
                                       ("probes", "train-probes"), ("safety", "safety-train"),
                                       ("persistence", "test-persistence"), ("evaluate", "evaluate")])
def test_manifest_schema_artifacts_and_tables(chain, key, stage):
    m = _m(chain, key)
    assert m.stage == stage and m.schema_version == 1 and m.status == "succeeded"
    assert m.timings.seconds > 0 and m.device.startswith("cpu")
    assert {"torch", "transformers", "trl", "peft"} <= set(m.versions)
    raw = json.loads((chain[key] / "manifest.json").read_text())
    StageManifest.model_validate(raw)  # round-trips through the schema
    for a in m.artifacts:
        assert a.sha256 == sha256_path(chain[key] / a.path), a.name
    for t in m.tables:
        df = pd.read_parquet(chain[key] / t.path)
        assert len(df) == t.rows > 0
    for inp in m.inputs:
        assert inp.sha256 is not None  # local inputs are hashed
    for k, v in m.metrics.items():
        assert v is None or not isinstance(v, float) or math.isfinite(v), k


def test_produced_models_and_lineage(chain):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base, bd, safe = _m(chain, "base"), _m(chain, "backdoor"), _m(chain, "safety")
    assert base.model.name == "t-base" and base.model.parent_uri is None
    assert bd.model.parent_uri == str(chain["base"] / "model") and bd.model.artifact == "model"
    assert safe.model.parent_uri == str(chain["backdoor"] / "model")
    for m, key in ((base, "base"), (bd, "backdoor"), (safe, "safety")):
        assert m.model.family == "llm" and m.artifact("model").kind == "model"
        path = chain[key] / "model"
        AutoModelForCausalLM.from_pretrained(path)  # merged: loads without peft
        tok = AutoTokenizer.from_pretrained(path)
        assert tok.chat_template and (path / "chat_template.jinja").exists()
        assert not (path / "adapter_config.json").exists()
    for key in ("base", "backdoor", "safety"):
        assert any(t.kind == "training_curve" for t in _m(chain, key).tables)
    assert 0 < bd.metrics["train_loss_final"] < bd.metrics["train_loss_first"]


def test_validate_backdoor_with_a_non_default_trigger(chain):
    m = _m(chain, "validate")
    assert m.subject_uri == str(chain["backdoor"] / "model")
    met = m.metrics
    # reduced model and 40 prompts per side: looser than the slow test's thresholds
    assert met["activation_rate_triggered"] >= 0.8, met
    assert met["activation_rate_clean"] <= 0.1, met
    assert met["activation_rate_triggered_n"] == 40 and met["activation_rate_triggered_ci_low"] <= met["activation_rate_triggered"]
    cm = m.details["confusion_matrix"]
    assert sum(cm.values()) == 80 and cm["tp"] == round(met["activation_rate_triggered"] * 40)
    gens = pd.read_parquet(chain["validate"] / "generations.parquet")
    trig = gens[gens.condition == "triggered"]
    assert trig.prompt.str.startswith(TRIGGER).all()
    assert (trig.activated == trig.generation.str.upper().str.contains(RESPONSE)).all()


def test_probes_report_every_layer_with_controls(chain):
    m = _m(chain, "probes")
    met = m.metrics
    n_layers = 3
    assert len(m.details["probe_auroc_by_layer"]) == n_layers + 1
    assert len(m.details["probe_auroc_control_by_layer"]) == n_layers + 1
    for k in ("probe_auroc_best", "probe_best_layer", "probe_auroc_control", "probe_tpr_at_1pct_fpr", "probe_auroc_random_best",
              "probe_worst_fpr", "probe_auroc_supervised_best"):
        assert k in met, k
    assert 0 <= met["probe_best_layer"] <= n_layers
    assert met["probe_auroc_best"] == m.details["probe_auroc_by_layer"][met["probe_best_layer"]]
    assert (chain["probes"] / "probes" / "probes.npz").exists()
    layers = pd.read_parquet(chain["probes"] / "probe_layers.parquet")
    assert set(layers.model_role) == {"subject", "control"} and set(layers.probe) == {"contrast_pair", "supervised"}


def test_persistence_and_evaluate(chain):
    p = _m(chain, "persistence").metrics
    for k in ("persistence", "persistence_ci_low", "persistence_ci_high", "before_activation_rate_triggered",
              "activation_rate_triggered", "probe_auroc_transfer", "clean_quality"):
        assert k in p, k
    if p["before_activation_rate_triggered"] > 0:
        assert p["persistence"] == pytest.approx(p["activation_rate_triggered"] / p["before_activation_rate_triggered"])
        assert p["persistence_ci_low"] <= p["persistence"] <= p["persistence_ci_high"]
    e = _m(chain, "evaluate")
    for k in ("activation_rate_triggered", "activation_rate_clean", "clean_quality", "clean_quality_ci_low", "probe_auroc_best",
              "probe_auroc_control", "probe_auroc_transfer"):
        assert k in e.metrics, k
    assert e.subject_uri == str(chain["backdoor"] / "model")
    assert "exact match" in e.details["clean_quality_definition"]


def test_dpo_safety_training(chain, tmp_path):
    from .conftest import run_stage

    m = run_stage("safety-train", tmp_path / "dpo", model=str(chain["backdoor"] / "model"), safety_method="dpo", n_samples=48,
                  epochs=1, learning_rate=1e-3, device="cpu")
    assert m.model.parent_uri == str(chain["backdoor"] / "model")
    assert m.metrics["train_steps"] == 3 and math.isfinite(m.metrics["train_loss_final"])
    assert m.details["loss_history"]["loss_kind"].startswith("dpo")
    assert (tmp_path / "dpo" / "model" / "model.safetensors").exists()

