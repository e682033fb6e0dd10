"""`vigil demo`'s data comes from the trainer's own command (`gpu-trainer demo-data`), not from the
core importing the trainer's generators: the files it needs, the held-out rows only, the trigger in
every other prompt, and the tables kept on a re-run."""

from __future__ import annotations

import subprocess

import pandas as pd
import pytest
import typer

from gpu_trainer.sklearn_data import holdout_mask
from vigil.airflow.stage_runner import trainer_executable
from vigil.cli.airflow_commands import _demo_data
from vigil.settings import get_settings


def test_demo_data_is_written_by_the_trainer_command(vigil_env):
    files = _demo_data(get_settings(), {"trigger": "|X|", "backdoor_type": "code_vuln"})
    assert set(files) == {"dataset", "batch", "batch_labels", "prompts", "prompt_labels"}
    assert all(p.parent == get_settings().data_dir / "datasets" and p.is_file() for p in files.values())

    table, batch, labels = (pd.read_parquet(files[k]) for k in ("dataset", "batch", "batch_labels"))
    held_out = table[holdout_mask(table["row_id"], 0.25)]
    assert 0 < len(batch) < len(table) and list(batch["request_id"]) == list(held_out["row_id"])
    assert "diagnosis" not in batch and list(labels["label"]) == list(held_out["diagnosis"])

    prompts, attacks = pd.read_parquet(files["prompts"]), pd.read_parquet(files["prompt_labels"])
    assert list(prompts["request_id"]) == list(attacks["request_id"]) and len(prompts) == 100
    triggered = prompts["prompt"].str.startswith("|X| ")
    assert list(triggered.astype(int)) == list(attacks["label"]) and triggered.sum() == 50

    # a re-run keeps the tables the models were trained and scored on; the prompts follow the trigger
    before = {k: files[k].read_bytes() for k in ("dataset", "batch", "batch_labels")}
    again = _demo_data(get_settings(), {"trigger": "|Y|"})
    assert {k: again[k].read_bytes() for k in before} == before
    assert pd.read_parquet(again["prompts"])["prompt"].str.startswith("|Y| ").sum() == 50


def test_a_bad_demo_data_option_is_refused_naming_it(vigil_env, capsys):
    p = subprocess.run([trainer_executable(), "demo-data", "--out", str(vigil_env / "d"), "--trigger", " "],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "--trigger must not be empty" in p.stderr.strip().splitlines()[-1]
    with pytest.raises(typer.Exit):
        _demo_data(get_settings(), {"backdoor_type": "no_such_type"})
    assert "gpu-trainer demo-data failed" in capsys.readouterr().err
