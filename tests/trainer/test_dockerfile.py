"""The image builds the same CLI. No Docker engine here: parse the Dockerfile instead."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

DOCKERFILE = Path(__file__).resolve().parents[2] / "containers" / "gpu-trainer" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_cuda_base_image():
    froms = [r for op, r in instructions() if op == "FROM"]
    assert froms and re.match(r"nvidia/cuda:\d+\.\d+(\.\d+)?-.*runtime", froms[-1]), froms


def test_runs_as_non_root_user():
    users = [r for op, r in instructions() if op == "USER"]
    assert users, "no USER instruction: the container would run as root"
    assert users[-1] not in ("root", "0", "0:0"), users[-1]
    # the user must exist before the switch
    ops = instructions()
    idx = max(i for i, (op, _) in enumerate(ops) if op == "USER")
    assert any(op == "RUN" and "useradd" in r and users[-1] in r for op, r in ops[:idx])


def test_entrypoint_is_gpu_trainer():
    eps = [r for op, r in instructions() if op == "ENTRYPOINT"]
    assert eps and json.loads(eps[-1]) == ["gpu-trainer"]


def test_installs_pinned_torch_and_the_trainer_extra():
    runs = " ".join(r for op, r in instructions() if op == "RUN")
    assert "torch==" in runs, "torch must be pinned"
    assert "[trainer]" in runs


def test_docker_build_check_when_available():
    import shutil
    import subprocess

    if not shutil.which("docker"):
        pytest.skip("no docker client on this machine")
    p = subprocess.run(["docker", "build", "--check", "-f", str(DOCKERFILE), str(DOCKERFILE.parents[2])],
                       capture_output=True, text=True, timeout=120)
    if "unknown flag" in p.stderr:
        pytest.skip("this docker client has no `build --check` (legacy builder)")
    if "Cannot connect" in p.stderr or "daemon" in p.stderr:
        pytest.skip("docker client present but no engine")
    assert p.returncode == 0, p.stderr
