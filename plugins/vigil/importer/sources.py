"""What PATH is (a metadata file, a causal-LM folder, a scikit-learn folder, an MLflow run, a
folder of metadata) and what each kind contributes beyond its metadata files.

Heavy imports (transformers, joblib) happen only for the kind that needs them.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.hashing import sha256_file, tree_sha256  # noqa: F401  (the importer's callers import them from here)
from vigil.importer.documents import (
    METADATA_SUFFIXES,
    MLMODEL,
    Document,
    check_inside_roots,
    check_regular_file,
    load_document,
    parse_yaml,
    read_bytes,
    read_text,
)
from vigil.importer.errors import ImportRefused
from vigil.importer.mapping import coerce_text_value
from vigil.importer.rules import file_rule

MAX_FILES = 10_000
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model")
# Files read first when a folder holds several metadata documents (earlier ones win conflicts).
PRIORITY = ("vigil.json", "vigil.yaml", "model.json", "model.yaml", "metadata.json", "metadata.yaml",
            "model_card.json", "modelcard.json", "model_card.yaml", "README.md", MLMODEL)
# What a causal-LM config contributes to the version's params (architecture, not training).
LLM_CONFIG_KEYS = ("model_type", "architectures", "hidden_size", "num_hidden_layers", "num_attention_heads",
                   "num_key_value_heads", "intermediate_size", "vocab_size", "max_position_embeddings",
                   "tie_word_embeddings", "dtype", "torch_dtype")


@dataclass
class SourceFiles:
    """The regular files an import reads: relative name -> real path, all inside the roots."""

    path: Path
    is_dir: bool
    files: dict[str, Path]
    skipped: list[dict[str, str]] = field(default_factory=list)

    def top(self) -> list[str]:
        return sorted(r for r in self.files if "/" not in r)


def collect_files(real: Path, roots: tuple[Path, ...], max_bytes: int) -> SourceFiles:
    if not real.is_dir():
        check_regular_file(real, real.name, max_bytes)
        return SourceFiles(real, False, {real.name: real})
    files: dict[str, Path] = {}
    skipped: list[dict[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(real, followlinks=False):
        here = Path(dirpath)
        for d in sorted(dirnames):
            rel = (here / d).relative_to(real).as_posix()
            if d.startswith(".") or d == "__pycache__":
                skipped.append({"source": rel + "/", "reason": "hidden or cache folder"})
                dirnames.remove(d)
            elif (here / d).is_symlink():
                raise ImportRefused(f"{rel} is a symlinked folder inside PATH; replace it with a real folder")
        for name in sorted(filenames):
            full = here / name
            rel = full.relative_to(real).as_posix()
            if name.startswith("."):
                skipped.append({"source": rel, "reason": "hidden file"})
                continue
            if full.is_symlink():
                try:
                    target = full.resolve(strict=True)
                except (OSError, RuntimeError):
                    raise ImportRefused(f"{rel} is a broken symlink; fix or remove it") from None
                check_inside_roots(target, roots, rel)
                full = target
            check_regular_file(full, rel, max_bytes)
            files[rel] = full
            if len(files) > MAX_FILES:
                raise ImportRefused(f"PATH holds more than {MAX_FILES} files; import a model folder, not a tree of them")
    if not files:
        raise ImportRefused(f"folder {real} holds no files to import")
    return SourceFiles(real, True, files, skipped)


def detect_kind(src: SourceFiles, max_bytes: int) -> str:
    """file | llm_folder | sklearn_folder | mlflow_run | metadata_folder."""
    if not src.is_dir:
        return "file"
    top = src.top()
    if "config.json" in top:
        try:
            cfg = json.loads(read_text(src.files["config.json"], "config.json", max_bytes))
        except (ValueError, ImportRefused):
            cfg = None
        if isinstance(cfg, dict) and ("model_type" in cfg or "architectures" in cfg):
            return "llm_folder"
    if any(r.endswith(PICKLE_SUFFIXES) for r in top):
        return "sklearn_folder"
    if "meta.yaml" in top and any(r.startswith(("metrics/", "params/")) for r in src.files):
        return "mlflow_run"
    return "metadata_folder"


KIND_FAMILY = {"file": "external", "metadata_folder": "external", "mlflow_run": "external",
               "llm_folder": "llm", "sklearn_folder": "sklearn"}
KIND_WORDS = {"file": "a metadata file", "metadata_folder": "a folder of metadata files",
              "mlflow_run": "an MLflow run folder", "llm_folder": "a causal-LM folder (config.json)",
              "sklearn_folder": "a scikit-learn model folder"}


def choose_family(kind: str, family: str | None) -> tuple[str, str]:
    """(family, how it was chosen); refuses a family the files cannot support."""
    if family is None or family == "auto":
        return KIND_FAMILY[kind], f"detected: {KIND_WORDS[kind]}"
    if family not in ("llm", "sklearn", "external"):
        raise ImportRefused(f"--family {family!r} is not one of llm, sklearn, external")
    if family == "llm" and kind != "llm_folder":
        raise ImportRefused(f"--family llm needs a folder with config.json (+ weights) of a causal LM; PATH is "
                            f"{KIND_WORDS[kind]} (use --family external for metadata only)")
    if family == "sklearn" and kind != "sklearn_folder":
        raise ImportRefused(f"--family sklearn needs a folder with a .joblib/.pkl model file and its metadata; "
                            f"PATH is {KIND_WORDS[kind]} (use --family external for metadata only)")
    return family, "--family"


def metadata_documents(src: SourceFiles, kind: str, max_bytes: int) -> list[Document]:
    """Parsed metadata files, in the order their values win."""
    if kind == "file":
        rule = file_rule(src.path.name)
        return [load_document(src.path, src.path.name, max_bytes,
                              section=rule.target if rule and rule.target in ("metrics", "params") else None)]
    if kind == "mlflow_run":
        return [mlflow_run_document(src, max_bytes)]
    names = []
    for rel in src.top():
        p = Path(rel)
        if p.suffix.lower() not in METADATA_SUFFIXES and p.name != MLMODEL:
            continue
        rule = file_rule(p.name)
        if rule is not None and rule.target == "skip":
            continue
        if kind == "llm_folder" and p.name == "config.json":
            continue  # read by transformers.AutoConfig, not by the alias rules
        names.append(rel)
    names.sort(key=lambda r: (PRIORITY.index(r) if r in PRIORITY else len(PRIORITY), r))
    docs = []
    for rel in names:
        rule = file_rule(rel)
        section = rule.target if rule and rule.target in ("metrics", "params") else None
        docs.append(load_document(src.files[rel], rel, max_bytes, section=section))
    if not docs and kind == "metadata_folder":
        raise ImportRefused(f"folder {src.path} holds no metadata file (.json, .yaml/.yml, .md model card or MLmodel)")
    return docs


def mlflow_run_document(src: SourceFiles, max_bytes: int) -> Document:
    """An MLflow file-store run: meta.yaml, metrics/<name> ('timestamp value step' lines, the
    last step wins), params/<name> and tags/<name> (text)."""
    texts: dict[str, str] = {}
    meta_text = read_text(src.files["meta.yaml"], "meta.yaml", max_bytes)
    texts["meta.yaml"] = meta_text
    meta = parse_yaml(meta_text, "meta.yaml") or {}
    data: dict[str, Any] = {"meta": meta if isinstance(meta, dict) else {}, "metrics": {}, "params": {}, "tags": {}}
    for rel in sorted(src.files):
        head, _, name = rel.partition("/")
        if head not in ("metrics", "params", "tags") or not name:
            continue
        text = read_text(src.files[rel], rel, max_bytes)
        texts[rel] = text
        if head == "metrics":
            best: tuple[int, int, str] | None = None
            for n, line in enumerate(text.splitlines(), 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) < 2:
                    raise ImportRefused(f"{rel} line {n}: expected 'timestamp value [step]', got {line.strip()!r}")
                try:
                    ts, step = int(float(parts[0])), int(float(parts[2])) if len(parts) > 2 else 0
                except ValueError:
                    raise ImportRefused(f"{rel} line {n}: timestamp and step must be numbers, got {line.strip()!r}") from None
                if best is None or (step, ts) >= best[:2]:
                    best = (step, ts, parts[1])
            if best is not None:
                data["metrics"][name] = best[2]  # text: the mapper checks it is a number
        elif head == "params":
            data["params"][name] = coerce_text_value(text.strip())
        else:
            data["tags"][name] = text.strip()
    return Document(rel="mlflow-run", text=json.dumps(texts, indent=1, sort_keys=True), data=data, format="mlflow_run")


# ---------------------------------------------------------------------------------------------
# Family specifics
@dataclass
class FamilyFacts:
    """What the model files themselves say (not the metadata)."""

    params: dict[str, Any] = field(default_factory=dict)
    framework: str | None = None
    task: str | None = None
    notes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra_documents: dict[str, str] = field(default_factory=dict)
    scorable: bool = True
    scorable_reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def safetensors_parameter_count(path: Path) -> int:
    """Parameters in a .safetensors file, from its JSON header only (no weights read)."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError("file shorter than a safetensors header")
        (n,) = struct.unpack("<Q", raw)
        if n > 100_000_000:
            raise ValueError("implausible safetensors header size")
        header = json.loads(f.read(n))
    total = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in info["shape"]:
            count *= int(dim)
        total += count
    return total


def llm_facts(src: SourceFiles, max_bytes: int) -> FamilyFacts:
    """Read config.json with transformers.AutoConfig from the local folder only (never a hub)."""
    facts = FamilyFacts(framework="transformers", task="text-generation")
    config_text = read_text(src.files["config.json"], "config.json", max_bytes)
    facts.extra_documents["config.json"] = config_text
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from transformers import AutoConfig
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    except ImportError:
        raise ImportRefused("importing a causal-LM folder needs transformers: install Vigil with its trainer extra "
                            "(pip install -e '.[trainer]'), or import the folder with --family external") from None

    try:
        cfg = AutoConfig.from_pretrained(str(src.path), local_files_only=True, trust_remote_code=False)
    except Exception as e:  # transformers raises ValueError/OSError/KeyError for unknown configs
        msg = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        raise ImportRefused(f"config.json: transformers cannot read this config ({msg}); import the folder with "
                            "--family external for metadata only") from None
    archs = list(getattr(cfg, "architectures", None) or [])
    # The saved architectures say what the weights are (a BERT config can be a decoder, but
    # BertForMaskedLM weights are not); without them, fall back to the model type.
    causal = (any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs) if archs
              else cfg.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
    if not causal:
        raise ImportRefused(f"config.json describes model_type {cfg.model_type!r} (architectures {archs or 'none'}), "
                            "not a causal LM; import it with --family external")
    config = cfg.to_dict()
    for key in LLM_CONFIG_KEYS:
        if config.get(key) is not None:
            facts.params[key] = config[key] if isinstance(config[key], (int, float, str, bool, list)) else str(config[key])
    weights = [r for r in src.top() if r.endswith(WEIGHT_SUFFIXES)]
    if not weights:
        raise ImportRefused("the folder has config.json but no weights (*.safetensors, pytorch_model*.bin); add the "
                            "weights or import it with --family external for metadata only")
    if all(w.endswith(".safetensors") for w in weights):
        try:
            facts.params["n_parameters"] = sum(safetensors_parameter_count(src.files[w]) for w in weights)
        except (ValueError, KeyError, OSError) as e:
            raise ImportRefused(f"{weights[0]}: not a readable safetensors file ({e}); re-save the weights") from None
    if not any(t in src.files for t in TOKENIZER_FILES):
        facts.missing.append("tokenizer")
        facts.notes.append("no tokenizer files: the evaluate stage needs one to score this model")
        facts.scorable, facts.scorable_reason = False, "no tokenizer in the folder"
    facts.details = {"weights": weights, "model_type": cfg.model_type, "architectures": archs}
    return facts


def _json_param(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)) and all(x is None or isinstance(x, (bool, int, float, str)) for x in v):
        return list(v)
    return repr(v)[:500]


def sklearn_facts(src: SourceFiles, max_bytes: int, trust_pickle: bool) -> FamilyFacts:
    """Hash-only unless trusted: unpickling runs arbitrary code from the file."""
    models = [r for r in src.top() if r.endswith(PICKLE_SUFFIXES)]
    if len(models) > 1:
        raise ImportRefused(f"the folder holds several model files ({', '.join(models)}); keep one per folder")
    model_rel = models[0]
    facts = FamilyFacts(framework="scikit-learn", details={"model_file": model_rel, "trusted_pickle": trust_pickle})
    if not trust_pickle:
        facts.scorable = False
        facts.scorable_reason = (f"{model_rel} was not loaded: unpickling runs code. Registered from metadata and hashes "
                                 "only; import again with --trust-pickle to load it, until then it cannot be scored")
        facts.notes.append(facts.scorable_reason)
        return facts
    read_bytes(src.files[model_rel], model_rel, max_bytes)  # size/permission checks before unpickling
    import joblib
    from sklearn.base import BaseEstimator
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        est = joblib.load(src.files[model_rel])
    except Exception as e:  # a bad pickle can raise anything
        raise ImportRefused(f"{model_rel} could not be loaded ({type(e).__name__}: {str(e)[:200]}); check the file "
                            "and the scikit-learn version it was saved with") from None
    if not isinstance(est, BaseEstimator):
        raise ImportRefused(f"{model_rel} holds a {type(est).__module__}.{type(est).__name__}, not a scikit-learn "
                            "estimator; import it with --family external")
    try:
        check_is_fitted(est)
    except NotFittedError:
        raise ImportRefused(f"{model_rel} holds an unfitted {type(est).__name__}; save the fitted model") from None
    except TypeError:
        pass
    facts.params = {k: _json_param(v) for k, v in est.get_params(deep=False).items()}
    facts.details["estimator"] = f"{type(est).__module__}.{type(est).__name__}"
    if hasattr(est, "n_features_in_"):
        facts.details["n_features_in"] = int(est.n_features_in_)
    if hasattr(est, "classes_"):
        facts.details["classes"] = [_json_param(c.item() if hasattr(c, "item") else c) for c in list(est.classes_)[:50]]
    facts.notes.append(f"{model_rel} loaded with --trust-pickle: {facts.details['estimator']}")
    return facts
