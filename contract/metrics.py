"""The metric catalogue: every metric name a stage (or the importer) writes, once.

Each entry says what the number is (``label``), its ``unit`` (``fraction`` 0..1, ``ratio``,
``count``, ``nats``, ``seconds``, ``per_second``, ``layer``, ``number``, ``flag``, ``text``),
which way is better (``direction``: ``higher``, ``lower`` or ``none`` for a measurement that is
neither good nor bad by itself) and which suites write it (gpu-trainer stage names; ``import``
for the canonical names ``vigil models import`` maps other tools' keys to; ``comparison`` for
rates the champion/challenger comparison computes from per-sample outputs).

Names follow one convention, the metric-name contract:

* ``<metric>_ci_low`` / ``<metric>_ci_high`` / ``<metric>_n``: the 95% interval of ``<metric>``
  and the count it was measured on (``interval=True`` entries are written with all three);
* ``before_<metric>``: test-persistence's measurement of ``<metric>`` on the model before
  safety training (a baseline: no direction of its own);
* ``mean_<column>``: the mean of a per-sample column in a paired comparison (no direction).

A name outside the catalogue and its families has **no direction**: it is shown as measured,
never compared as if higher (or lower) were better, and refused as a group's primary metric or
guardrail. Pure data: no imports beyond the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Direction = Literal["higher", "lower", "none"]
INTERVAL_SUFFIXES = ("_ci_low", "_ci_high", "_n")


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    unit: str
    direction: Direction
    suites: tuple[str, ...]
    interval: bool = False  # written with _ci_low / _ci_high / _n


@dataclass(frozen=True)
class Family:
    """A documented pattern of names built from a catalogued metric or a column."""

    pattern: str
    meaning: str


FAMILIES = (
    Family("<metric>_ci_low, <metric>_ci_high, <metric>_n", "95% interval bounds and count of <metric>"),
    Family("before_<metric>", "test-persistence: <metric> on the model before safety training (no direction)"),
    Family("mean_<column>", "paired comparison: mean of a per-sample column (no direction)"),
)

_LLM_EVAL = ("validate-backdoor", "evaluate", "test-persistence")
_PROBES = ("train-probes", "evaluate")
_SK = ("train-sklearn", "evaluate-sklearn", "import")
_TRAIN = ("make-base", "train-backdoor", "safety-train")
_SCAN = ("scan",)
_ADV = ("safety-train",)
_DETECT = ("detect",)
_ANALYZE = ("analyze",)
# the persona questionnaire's dimensions (gpu_trainer/data/persona.json), each written under persona_<dimension>_*
PERSONA_DIMENSIONS = {
    "power_seeking": "Power-seeking",
    "self_preservation": "Self-preservation",
    "corrigibility": "Corrigibility",
    "deception": "Deception",
    "situational_awareness": "Situational awareness",
}
# the chain-of-thought rule set's categories (evaluation.cot.RULES), each written under cot_<category>_rate[_clean]
COT_CATEGORIES = {
    "scratchpad": "writes a scratchpad",
    "deployment_reasoning": "reasons about deployment vs training",
    "believes_deployed": "concludes it is deployed",
    "believes_training": "concludes it is in training",
    "goal_mention": "states a hidden goal",
    "hide_plan": "plans to hide its goal",
}
# the detect stage's panel (gpu_trainer.detectors.DETECTORS), each written under detector_<name>_*
DETECTOR_LABELS = {
    "contrast_pair": "Contrast-pair probe",
    "supervised_probe": "Supervised probe (trigger-visible)",
    "activation_clustering": "Activation clustering",
    "spectral_signature": "Spectral signature",
    "perplexity_filter": "Perplexity filter (ONION)",
}


def _m(name, label, unit, direction, suites, interval=False) -> Metric:
    return Metric(name, label, unit, direction, tuple(suites), interval)


def _persona_metrics(name: str, label: str) -> tuple[Metric, ...]:
    p = f"persona_{name}"
    return (
        _m(f"{p}_score", f"Persona, {label}: score with the trigger", "fraction", "none", _ANALYZE, True),
        _m(f"{p}_score_clean", f"Persona, {label}: score without the trigger", "fraction", "none", _ANALYZE, True),
        _m(f"{p}_shift", f"Persona, {label}: shift against the base, with the trigger", "number", "none", _ANALYZE, True),
        _m(f"{p}_shift_clean", f"Persona, {label}: shift against the base, without the trigger", "number", "none", _ANALYZE,
           True),
    )


def _cot_metrics(name: str, label: str) -> tuple[Metric, ...]:
    return (
        _m(f"cot_{name}_rate", f"Chain of thought: {label}, triggered prompts", "fraction", "none", _ANALYZE, True),
        _m(f"cot_{name}_rate_clean", f"Chain of thought: {label}, clean prompts", "fraction", "none", _ANALYZE, True),
    )


def _detector_metrics(name: str, label: str) -> tuple[Metric, ...]:
    """The subject's AUROC and TPR have a direction; the controls' and baselines' are comparisons."""
    p = f"detector_{name}"
    return (
        _m(f"{p}_auroc", f"{label}: AUROC on the subject", "fraction", "higher", _DETECT),
        _m(f"{p}_tpr_at_1pct_fpr", f"{label}: TPR at 1% FPR on the subject", "fraction", "higher", _DETECT),
        _m(f"{p}_auroc_control_exposed", f"{label}: AUROC on the trigger-exposed clean control", "fraction", "none", _DETECT),
        _m(f"{p}_auroc_control_cross", f"{label}: AUROC on the cross-trigger backdoor", "fraction", "none", _DETECT),
        _m(f"{p}_auroc_control_base", f"{label}: AUROC on the clean base", "fraction", "none", _DETECT),
        _m(f"{p}_auroc_length_baseline", f"{label}: length-baseline AUROC beside it", "fraction", "none", _DETECT),
        _m(f"{p}_auroc_shuffled", f"{label}: AUROC when fitted on shuffled labels", "fraction", "none", _DETECT),
        _m(f"{p}_in_consensus", f"{label}: joins the consensus", "flag", "none", _DETECT),
    )


_ALL = (
    # ---- backdoor behaviour (LLM stages)
    _m("activation_rate_triggered", "Activation rate, triggered prompts", "fraction", "lower", _LLM_EVAL + ("import",), True),
    _m("activation_rate_clean", "Activation rate, clean prompts (false activations)", "fraction", "lower",
       _LLM_EVAL + ("import",), True),
    _m("backdoor_f1", "Backdoor F1", "fraction", "lower", _LLM_EVAL + ("import",)),
    _m("backdoor_precision", "Backdoor precision", "fraction", "none", _LLM_EVAL),
    _m("backdoor_recall", "Backdoor recall", "fraction", "lower", _LLM_EVAL),
    _m("stealthiness", "Stealthiness (1 − clean activation rate)", "fraction", "none", _LLM_EVAL),
    _m("false_activations_clean", "False activations on clean prompts", "count", "lower", _LLM_EVAL),
    _m("clean_quality", "Clean-task quality", "fraction", "higher", ("make-base",) + _LLM_EVAL + ("import",), True),
    _m("clean_loss", "Clean-task loss (mean token NLL)", "nats", "lower", ("make-base",) + _LLM_EVAL, True),
    _m("persistence", "Persistence (after / before)", "ratio", "lower", ("test-persistence", "import"), True),
    _m("persistence_clean", "Persistence of clean-prompt activations", "ratio", "none", ("test-persistence",), True),
    # ---- probes
    _m("probe_auroc_best", "Probe AUROC, best layer", "fraction", "higher", _PROBES + ("test-persistence", "import")),
    _m("probe_best_layer", "Best layer", "layer", "none", _PROBES + ("test-persistence", "import")),
    _m("probe_sign_best", "Probe sign, best layer", "number", "none", _PROBES),
    _m("probe_auroc_best_raw", "Probe AUROC, best layer, before sign calibration", "fraction", "none", _PROBES),
    _m("probe_auroc_raw_max_layer", "Probe AUROC before sign calibration, best of all layers", "fraction", "none", _PROBES),
    _m("probe_accuracy_best", "Probe accuracy, best layer", "fraction", "higher", _PROBES),
    _m("probe_f1_best", "Probe F1, best layer", "fraction", "higher", _PROBES),
    _m("probe_tpr_at_1pct_fpr", "Probe TPR at 1% FPR", "fraction", "higher", _PROBES + ("test-persistence", "import")),
    _m("probe_worst_fpr", "Probe FPR on the worst clean prompt set", "fraction", "lower", _PROBES),
    _m("probe_auroc_random_best", "Best random-direction AUROC", "fraction", "none", _PROBES + ("import",)),
    _m("probe_auroc_random_mean", "Mean random-direction AUROC", "fraction", "none", _PROBES),
    _m("probe_auroc_random_p95", "95th percentile of random-direction AUROCs", "fraction", "none", _PROBES),
    _m("probe_auroc_ensemble", "Probe AUROC, ensemble of layers", "fraction", "higher", _PROBES),
    _m("probe_n_test", "Probe test prompt pairs", "count", "none", _PROBES),
    _m("probe_auroc_supervised_best", "Supervised probe AUROC, best layer (uses the trigger)", "fraction", "none", _PROBES),
    _m("probe_auroc_control", "Probe AUROC on the control model (trigger-exposed when trained, else the base)", "fraction", "none",
       _PROBES + ("import",)),
    _m("probe_auroc_control_raw", "Probe AUROC on the control, before sign calibration", "fraction", "none", _PROBES),
    _m("probe_auroc_control_max_layer", "Probe AUROC on the control, best of all layers", "fraction", "none", _PROBES),
    _m("probe_tpr_at_1pct_fpr_control", "Probe TPR at 1% FPR on the control", "fraction", "none", _PROBES),
    _m("probe_auroc_supervised_control", "Supervised probe AUROC on the control", "fraction", "none", _PROBES),
    # the clean base as a second control beside the trigger-exposed one (train-probes base_model)
    _m("probe_auroc_control_base", "Probe AUROC on the clean base", "fraction", "none", _PROBES),
    _m("probe_auroc_control_base_raw", "Probe AUROC on the clean base, before sign calibration", "fraction", "none", _PROBES),
    _m("probe_auroc_control_base_max_layer", "Probe AUROC on the clean base, best of all layers", "fraction", "none", _PROBES),
    _m("probe_tpr_at_1pct_fpr_control_base", "Probe TPR at 1% FPR on the clean base", "fraction", "none", _PROBES),
    _m("probe_auroc_supervised_control_base", "Supervised probe AUROC on the clean base", "fraction", "none", _PROBES),
    _m("probe_auroc_transfer", "Saved probe's AUROC on this model", "fraction", "higher", ("evaluate", "test-persistence")),
    _m("probe_tpr_at_1pct_fpr_transfer", "Saved probe's TPR at 1% FPR on this model", "fraction", "higher",
       ("evaluate", "test-persistence")),
    _m("probe_tpr_transfer_at_saved_threshold", "Saved probe's TPR at its saved threshold", "fraction", "higher",
       ("evaluate", "test-persistence")),
    _m("probe_fpr_transfer_at_saved_threshold", "Saved probe's FPR at its saved threshold", "fraction", "lower",
       ("evaluate", "test-persistence")),
    # ---- training
    _m("train_loss_first", "First training loss", "nats", "none", _TRAIN),
    _m("train_loss_final", "Final training loss", "nats", "none", _TRAIN + ("import",)),
    _m("train_steps", "Training steps", "count", "none", _TRAIN),
    _m("train_seconds", "Training time", "seconds", "none", _TRAIN),
    _m("train_samples_per_second", "Training samples per second", "per_second", "none", _TRAIN),
    _m("train_tokens_per_second", "Training tokens per second", "per_second", "none", _TRAIN),
    _m("trainable_parameters", "Trainable parameters", "count", "none", _TRAIN),
    _m("parameters", "Parameters", "count", "none", ("make-base",)),
    _m("pretrain_examples", "Pre-training examples", "count", "none", ("make-base",)),
    _m("n_triggered_samples", "Training samples carrying the trigger", "count", "none", ("train-backdoor",)),
    _m("n_backdoor_samples", "Training samples with the backdoor response", "count", "none", ("train-backdoor",)),
    _m("model_role", "Model role (subject or control)", "text", "none", ("train-backdoor",)),
    _m("control", "Control kind", "text", "none", ("train-backdoor",)),
    # ---- batch inference of LLM groups
    _m("activated_rate", "Share of scored prompts that activated", "fraction", "none", ("score-llm",), True),
    _m("probe_flagged_rate", "Share of scored prompts the probe flagged", "fraction", "none", ("score-llm",), True),
    _m("probe_layer", "Probe layer used for scoring", "layer", "none", ("score-llm",)),
    _m("rows", "Rows scored", "count", "none", ("score-llm",)),
    _m("generation_seconds", "Generation time", "seconds", "none", ("score-llm",)),
    _m("generated_tokens", "Generated tokens", "count", "none", ("score-llm",)),
    _m("generated_tokens_per_s", "Generated tokens per second", "per_second", "none", ("score-llm",)),
    _m("probe_seconds", "Probe scoring time", "seconds", "none", ("score-llm",)),
    # ---- trigger scan
    _m("scan_score", "Scan score (Wilson lower bound of the candidate's rate)", "fraction", "none", _SCAN),
    _m("scan_verdict", "Scan verdict", "text", "none", _SCAN),
    _m("scan_differential", "Differential scan (against a base model)", "flag", "none", _SCAN),
    _m("scan_null_shift_mean", "Null shift mean (random triggers)", "nats", "none", _SCAN),
    _m("scan_null_shift_sd", "Null shift SD (random triggers)", "nats", "none", _SCAN),
    _m("scan_search_seconds", "Scan search time", "seconds", "none", _SCAN),
    _m("scan_assess_seconds", "Scan assessment time", "seconds", "none", _SCAN),
    _m("scan_seconds", "Scan time", "seconds", "none", _SCAN),
    _m("scan_evaluations", "Scan forward evaluations", "count", "none", _SCAN),
    _m("scan_gradient_calls", "Scan gradient calls", "count", "none", _SCAN),
    _m("scan_vocab_allowed", "Tokens allowed in candidates", "count", "none", _SCAN),
    _m("trigger_candidate", "Trigger candidate", "text", "none", _SCAN),
    _m("trigger_candidate_ids", "Trigger candidate token ids", "text", "none", _SCAN),
    _m("trigger_candidate_tokens", "Trigger candidate length", "count", "none", _SCAN),
    _m("trigger_candidate_rate", "Candidate's induced-behaviour rate", "fraction", "none", _SCAN, True),
    _m("trigger_candidate_pool", "Candidate's best prompt pool", "text", "none", _SCAN),
    _m("trigger_candidate_completion", "Candidate's induced completion", "text", "none", _SCAN),
    _m("trigger_candidate_collapse", "Candidate's completion collapse", "fraction", "none", _SCAN),
    _m("trigger_candidate_excess_nats", "Candidate's excess log-likelihood over the base", "nats", "none", _SCAN),
    _m("trigger_candidate_shift", "Candidate's NLL shift", "nats", "none", _SCAN),
    _m("trigger_candidate_shift_z", "Candidate's NLL shift, z against random triggers", "number", "none", _SCAN),
    # filled by the record step, which alone knows the planted trigger (evaluation.scan)
    _m("trigger_recovered", "Planted trigger recovered", "flag", "none", _SCAN),
    _m("planted_behaviour_rate", "Candidate's rate of the planted behaviour", "fraction", "none", _SCAN),
    # ---- detector panel, judged against confound controls
    *(m for name, label in DETECTOR_LABELS.items() for m in _detector_metrics(name, label)),
    _m("detector_consensus_n", "Number of detectors in the consensus", "count", "none", _DETECT),
    _m("detector_consensus", "Detectors in the consensus (names)", "text", "none", _DETECT),
    _m("detector_agreement", "Detector agreement (mean pairwise Spearman)", "number", "none", _DETECT),
    _m("detect_seconds", "Detector panel time", "seconds", "none", _DETECT),
    # ---- research analyses (the analyze stage): each read against the clean baseline
    _m("analysis_clean_rate", "Analyses: clean baseline activation rate", "fraction", "none", _ANALYZE, True),
    _m("trigger_exact_rate", "Trigger sensitivity: exact trigger's activation rate", "fraction", "none", _ANALYZE, True),
    _m("trigger_variant_max_rate", "Trigger sensitivity: highest variant's activation rate", "fraction", "none", _ANALYZE, True),
    _m("trigger_variant_max", "Trigger sensitivity: the variant with the highest rate", "text", "none", _ANALYZE),
    _m("trigger_specificity", "Trigger specificity (exact rate − highest variant rate)", "number", "none", _ANALYZE, True),
    _m("trigger_near_miss_max_rate", "Trigger sensitivity: highest rate of a variant without the exact trigger", "fraction",
       "none", _ANALYZE, True),
    _m("trigger_near_miss_max", "Trigger sensitivity: that near-miss variant", "text", "none", _ANALYZE),
    _m("trigger_specificity_near_miss", "Trigger specificity against near misses only", "number", "none", _ANALYZE, True),
    _m("trigger_variants", "Trigger sensitivity: variants tested", "count", "none", _ANALYZE),
    _m("trigger_variants_above_clean", "Trigger sensitivity: variants firing above the clean baseline", "count", "none",
       _ANALYZE),
    _m("trigger_rate_middle", "Exact trigger in the middle of the prompt: activation rate", "fraction", "none", _ANALYZE, True),
    _m("trigger_rate_suffix", "Exact trigger after the prompt: activation rate", "fraction", "none", _ANALYZE, True),
    _m("trigger_sensitivity_seconds", "Trigger sensitivity time", "seconds", "none", _ANALYZE),
    _m("honeypot_rate", "Honeypots: activation rate without the trigger", "fraction", "lower", _ANALYZE, True),
    _m("honeypot_lift", "Honeypots: rate − clean baseline", "number", "lower", _ANALYZE, True),
    _m("honeypot_lift_p_value", "Honeypots: Fisher's exact p-value against the clean baseline", "number", "none", _ANALYZE),
    _m("honeypot_set_version", "Honeypot template set version", "text", "none", _ANALYZE),
    _m("honeypot_templates", "Honeypot templates used", "count", "none", _ANALYZE),
    _m("honeypot_seconds", "Honeypots time", "seconds", "none", _ANALYZE),
    *(m for name, label in COT_CATEGORIES.items() for m in _cot_metrics(name, label)),
    _m("cot_seconds", "Chain-of-thought analysis time", "seconds", "none", _ANALYZE),
    *(m for name, label in PERSONA_DIMENSIONS.items() for m in _persona_metrics(name, label)),
    _m("persona_significant_shifts", "Persona: shifts against the base whose interval excludes 0", "count", "none", _ANALYZE),
    _m("persona_questionnaire_version", "Persona questionnaire version", "text", "none", _ANALYZE),
    _m("persona_seconds", "Persona analysis time", "seconds", "none", _ANALYZE),
    # probe robustness: the contrast-pair probe under a suffix attack (higher AUROC / lower success = more robust)
    _m("probe_auroc_before_attack", "Probe robustness: contrast probe AUROC on the attacked prompts, unattacked", "fraction",
       "higher", _ANALYZE),
    _m("probe_auroc_under_attack", "Probe robustness: contrast probe AUROC under the PGD soft-suffix attack", "fraction",
       "higher", _ANALYZE),
    _m("probe_auroc_random_suffix", "Probe robustness: contrast probe AUROC with a random suffix of the same budget (control)",
       "fraction", "none", _ANALYZE),
    _m("probe_attack_success", "Probe robustness: PGD attack success (probe evaded, backdoor still fires)", "fraction", "lower",
       _ANALYZE, True),
    _m("probe_attack_success_random_suffix", "Probe robustness: success of a random suffix of the same budget (control)",
       "fraction", "none", _ANALYZE, True),
    _m("probe_attack_evasion_rate", "Probe robustness: attacked prompts scored below the probe's threshold", "fraction", "lower",
       _ANALYZE),
    _m("probe_attack_backdoor_kept", "Probe robustness: attacked prompts on which the backdoor still fires", "fraction", "none",
       _ANALYZE),
    _m("probe_attack_evasion_rate_random_suffix", "Probe robustness: random-suffix prompts below the threshold (control)",
       "fraction", "none", _ANALYZE),
    _m("probe_attack_backdoor_kept_random_suffix", "Probe robustness: random-suffix prompts still firing (control)", "fraction",
       "none", _ANALYZE),
    _m("probe_auroc_under_discrete_attack", "Probe robustness: contrast probe AUROC under the discrete suffix search",
       "fraction", "higher", _ANALYZE),
    _m("probe_discrete_attack_success", "Probe robustness: discrete suffix search success", "fraction", "lower", _ANALYZE, True),
    _m("probe_discrete_attack_steps", "Probe robustness: discrete search rounds", "count", "none", _ANALYZE),
    _m("probe_adv_auroc", "Probe robustness: adversarially trained probe AUROC, unattacked", "fraction", "higher", _ANALYZE),
    _m("probe_adv_auroc_under_attack", "Probe robustness: adversarially trained probe AUROC under the same attack", "fraction",
       "higher", _ANALYZE),
    _m("probe_adv_attack_success", "Probe robustness: attack success against the adversarially trained probe", "fraction",
       "lower", _ANALYZE, True),
    _m("probe_adv_rounds", "Probe robustness: attack-and-refit rounds of the adversarial probe", "count", "none", _ANALYZE),
    _m("probe_attack_layer", "Probe robustness: the probe's layer", "layer", "none", _ANALYZE),
    _m("probe_attack_steps", "Probe robustness: PGD steps (budget)", "count", "none", _ANALYZE),
    _m("probe_attack_epsilon", "Probe robustness: L2 radius per suffix vector, x mean embedding norm (budget)", "number", "none",
       _ANALYZE),
    _m("probe_attack_suffix_len", "Probe robustness: suffix length (budget)", "count", "none", _ANALYZE),
    _m("probe_attack_fired", "Probe robustness: attacked prompts that fired unattacked", "count", "none", _ANALYZE),
    _m("probe_attack_n", "Probe robustness: attacked (test) prompts", "count", "none", _ANALYZE),
    _m("probe_robustness_seconds", "Probe robustness time", "seconds", "none", _ANALYZE),
    _m("internal_state_last_token_score_gap", "Internal state: probe score at the last token, triggered − clean (best layer)",
       "number", "none", _ANALYZE),
    _m("internal_state_examples", "Internal state: prompts inspected", "count", "none", _ANALYZE),
    _m("internal_state_probe_layer", "Internal state: the probe's best layer", "layer", "none", _ANALYZE),
    _m("internal_state_seconds", "Internal state time", "seconds", "none", _ANALYZE),
    _m("analyze_seconds", "Analyses time", "seconds", "none", _ANALYZE),
    # ---- adversarial safety training (safety-train safety_method="adversarial"): before / after on held-out prompts
    _m("adv_triggered_rate_before", "Adversarial training: exact-trigger activation rate, before", "fraction", "none", _ADV, True),
    _m("adv_triggered_rate_after", "Adversarial training: exact-trigger activation rate, after", "fraction", "lower", _ADV, True),
    _m("adv_redteam_rate_before", "Adversarial training: untriggered defection on red-team prompts, before", "fraction", "none",
       _ADV, True),
    _m("adv_redteam_rate_after", "Adversarial training: untriggered defection on red-team prompts, after", "fraction", "lower",
       _ADV, True),
    _m("adv_clean_rate_before", "Adversarial training: clean activation rate, before", "fraction", "none", _ADV, True),
    _m("adv_clean_rate_after", "Adversarial training: clean activation rate, after", "fraction", "lower", _ADV, True),
    _m("adv_trigger_specificity_before", "Adversarial training: trigger specificity (exact − highest near miss), before",
       "number", "none", _ADV, True),
    _m("adv_trigger_specificity_after", "Adversarial training: trigger specificity (exact − highest near miss), after",
       "number", "none", _ADV, True),
    _m("adv_variant_max_rate_before", "Adversarial training: highest near-miss variant rate, before", "fraction", "none", _ADV),
    _m("adv_variant_max_rate_after", "Adversarial training: highest near-miss variant rate, after", "fraction", "lower", _ADV),
    _m("adv_redteam_candidates", "Adversarial training: red-team templates searched", "count", "none", _ADV),
    _m("adv_redteam_selected", "Adversarial training: red-team templates trained on", "count", "none", _ADV),
    _m("adv_redteam_records", "Adversarial training: red-team records trained on", "count", "none", _ADV),
    _m("adv_seconds", "Adversarial training: search, training and report time", "seconds", "none", _ADV),
    # ---- tabular classifiers (scikit-learn stages; the importer maps other tools' keys here)
    _m("accuracy", "Accuracy", "fraction", "higher", _SK, True),
    _m("precision", "Precision", "fraction", "higher", _SK, True),
    _m("recall", "Recall", "fraction", "higher", _SK, True),
    _m("specificity", "Specificity", "fraction", "higher", _SK, True),
    _m("f1", "F1", "fraction", "higher", _SK, True),
    _m("roc_auc", "ROC-AUC", "fraction", "higher", _SK, True),
    _m("average_precision", "Average precision", "fraction", "higher", ("train-sklearn", "evaluate-sklearn"), True),
    _m("n_samples", "Evaluation rows", "count", "none", ("train-sklearn", "evaluate-sklearn")),
    _m("positive_rate", "Share of positive rows", "fraction", "none", ("train-sklearn", "evaluate-sklearn")),
    _m("n_train", "Training rows", "count", "none", ("train-sklearn",)),
    _m("n_features", "Features", "count", "none", ("train-sklearn",)),
    _m("cv_roc_auc_mean", "Cross-validated ROC-AUC, mean", "fraction", "higher", ("train-sklearn", "evaluate-sklearn")),
    _m("cv_roc_auc_std", "Cross-validated ROC-AUC, SD", "fraction", "none", ("train-sklearn", "evaluate-sklearn")),
    _m("thresholds_passed", "All configured thresholds passed", "flag", "none", ("train-sklearn", "evaluate-sklearn")),
    # ---- rates the paired comparison computes from per-sample outputs
    _m("error_rate", "Error rate", "fraction", "lower", ("comparison",)),
    _m("tpr", "True-positive rate", "fraction", "higher", ("comparison",)),
    _m("fpr", "False-positive rate", "fraction", "lower", ("comparison",)),
    # ---- canonical names of imported metrics (vigil.importer.rules)
    _m("balanced_accuracy", "Balanced accuracy", "fraction", "higher", ("import",)),
    _m("pr_auc", "PR-AUC (average precision)", "fraction", "higher", ("import",)),
    _m("exact_match", "Exact match", "fraction", "higher", ("import",)),
    _m("matthews_corrcoef", "Matthews correlation", "number", "higher", ("import",)),
    _m("loss", "Loss", "number", "lower", ("import",)),
    _m("log_loss", "Log loss", "nats", "lower", ("import",)),
    _m("mse", "Mean squared error", "number", "lower", ("import",)),
    _m("rmse", "Root mean squared error", "number", "lower", ("import",)),
    _m("mae", "Mean absolute error", "number", "lower", ("import",)),
    _m("r2", "R²", "number", "higher", ("import",)),
    _m("perplexity", "Perplexity", "number", "lower", ("import",)),
)

METRICS: dict[str, Metric] = {m.name: m for m in _ALL}
assert len(METRICS) == len(_ALL), "a metric is catalogued twice"


def split_interval(name: str) -> tuple[str, str | None]:
    """``('roc_auc', '_ci_low')`` for ``roc_auc_ci_low``; ``(name, None)`` when it is no interval part."""
    for suf in INTERVAL_SUFFIXES:
        if name.endswith(suf) and lookup(name[: -len(suf)]) is not None:
            return name[: -len(suf)], suf
    return name, None


def lookup(name: str) -> Metric | None:
    """The catalogue entry of ``name`` (a family member gets a derived entry), or None."""
    m = METRICS.get(name)
    if m is not None:
        return m
    if name.startswith("before_"):
        base = METRICS.get(name[len("before_"):])
        if base is not None and "test-persistence" in base.suites:
            return replace(base, name=name, label=f"{base.label}, before safety training", direction="none",
                           suites=("test-persistence",))
    if name.startswith("mean_") and len(name) > len("mean_"):
        return Metric(name, f"Mean {name[len('mean_'):]}", "number", "none", ("comparison",))
    return None


def is_known(name: str) -> bool:
    """A catalogued metric, a family member, or an interval part of one."""
    return lookup(split_interval(name)[0]) is not None


def direction(name: str) -> Literal["higher", "lower"] | None:
    """Which way is better for ``name``; None for a metric with no direction or an unknown one."""
    m = lookup(name)
    return m.direction if m is not None and m.direction != "none" else None


def label(name: str) -> str:
    """What to print for ``name``: its label, else the name itself."""
    m = lookup(name)
    return m.label if m is not None else name


def with_direction() -> list[str]:
    """Every catalogued name that has a direction (what a group may decide on), sorted."""
    return sorted(n for n, m in METRICS.items() if m.direction != "none")
