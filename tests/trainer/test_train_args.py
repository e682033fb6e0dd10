"""The trainers' arguments under the installed transformers: activation checkpointing is off,
whatever the 5.x release calls it (5.17 `gradient_checkpointing`, 5.24 `activation_checkpointing`;
the wrong name is a TypeError at the first training step, seen on a GPU host with 5.17)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import TrainingArguments
from trl import DPOConfig, SFTConfig

from gpu_trainer.train import TrainSettings, _common_args, checkpointing_arg


@pytest.mark.parametrize("config", [pytest.param(SFTConfig, id="sft"), pytest.param(DPOConfig, id="dpo")])
def test_checkpointing_is_off_under_the_installed_name(config, tmp_path):
    name = checkpointing_arg()
    assert name in {f.name for f in dataclasses.fields(TrainingArguments)}
    args = config(**_common_args(TrainSettings(), torch.device("cpu"), str(tmp_path)))
    assert getattr(args, name) is False
