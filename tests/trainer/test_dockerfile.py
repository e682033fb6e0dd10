"""The image builds the same CLI, slim. No Docker engine needed: parse the Dockerfile and the
image's pyproject instead (tests/trainer/test_image_docker.py checks a built image)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "containers" / "gpu-trainer" / "Dockerfile"
IMAGE_PYPROJECT = ROOT / "containers" / "gpu-trainer" / "pyproject.toml"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def build_args() -> dict[str, str]:
    return dict(r.partition("=")[::2] for op, r in instructions() if op == "ARG")


def test_cuda_base_image_by_default():
    """GPU hosts get the CUDA runtime base unless BASE_IMAGE names another (`make image`: a
    debootstrapped Debian bookworm)."""
    assert re.match(r"nvidia/cuda:\d+\.\d+(\.\d+)?-.*runtime", build_args()["BASE_IMAGE"])
    froms = [r for op, r in instructions() if op == "FROM"]
    assert froms[0].startswith("${BASE_IMAGE}"), froms


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


def test_installs_pinned_cuda_torch_by_default():
    args = build_args()
    assert args["TORCH_REQUIREMENT"] == "torch==2.13.0", "torch must be pinned"
    assert args["TORCH_INDEX"].startswith("https://download.pytorch.org/whl/cu")
    assert args["TRAINER_EXTRAS"] == "qlora"


def _req_name(req: str) -> str:
    from packaging.requirements import Requirement

    return Requirement(req).name.lower().replace("_", "-")


def test_image_requirements_are_the_root_pins():
    """One source of truth: each requirement of the image is spelled exactly as in the root
    pyproject (its dependencies or its trainer extra), and the whole trainer extra is there."""
    import tomllib

    root = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    image = tomllib.loads(IMAGE_PYPROJECT.read_text())["project"]
    pins = {_req_name(r): r for r in root["dependencies"] + root["optional-dependencies"]["trainer"]}
    for req in image["dependencies"]:
        assert req == pins.get(_req_name(req)), f"{req!r} differs from the root pyproject's {pins.get(_req_name(req))!r}"
    assert {_req_name(r) for r in root["optional-dependencies"]["trainer"]} <= {_req_name(r) for r in image["dependencies"]}
    assert image["requires-python"] == root["requires-python"]
    assert image["scripts"] == {"gpu-trainer": root["scripts"]["gpu-trainer"]}


SLIM_PACKAGES = {"gpu_trainer", "gpu_trainer.stages", "evaluation", "contract", "contract.specs"}
NOT_IN_IMAGE = ("apache-airflow", "vigil", "site-builder", "site_builder", "plugins")


def test_slim_install_set_has_no_airflow_vigil_or_site_builder():
    """What the image installs: the three stage packages and the ML stack. Neither Airflow (not
    even as a dependency of a dependency, resolved here from this environment's metadata) nor the
    Vigil core nor the site builder, in the packages, the copied sources or the build context."""
    import tomllib
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement

    image = tomllib.loads(IMAGE_PYPROJECT.read_text())
    assert set(image["tool"]["setuptools"]["packages"]) == SLIM_PACKAGES
    copied = [r.split()[0] for op, r in instructions() if op == "COPY" and not r.startswith("--from")]
    assert not [c for c in copied if c.startswith(("plugins", "site_builder", "dags", "pyproject.toml"))], copied
    allowed = [line[1:] for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    assert allowed and not [a for a in allowed if a.startswith(("plugins", "site_builder", "dags", ".venv"))], allowed

    todo = [Requirement(r) for r in image["project"]["dependencies"]]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            subs = requires(req.name) or []
        except PackageNotFoundError:
            continue
        for sub in map(Requirement, subs):
            if sub.marker is None or sub.marker.evaluate({"extra": ""}):
                todo.append(sub)
    assert "torch" in seen and "transformers" in seen
    bad = sorted(n for n in seen if n.startswith(NOT_IN_IMAGE))
    assert not bad, f"the image would install {bad}"


def test_every_package_of_the_shipped_sources_is_listed():
    """A subpackage missing from an explicit setuptools ``packages`` list is left out of the wheel
    and of the image (contract.specs is one): every folder with an ``__init__.py`` under the stage
    packages is listed in the image's pyproject, and in the root one too."""
    import tomllib

    sources = {"gpu_trainer": ROOT / "containers" / "gpu-trainer" / "gpu_trainer", "evaluation": ROOT / "evaluation",
               "contract": ROOT / "contract"}
    found = {".".join((top, *init.parent.relative_to(src).parts)) for top, src in sources.items() for init in src.rglob("__init__.py")}
    assert {"contract", "contract.specs", "gpu_trainer.stages"} <= found
    image = set(tomllib.loads(IMAGE_PYPROJECT.read_text())["tool"]["setuptools"]["packages"])
    root = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert sorted(found - image) == [] and sorted(found - root) == []


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
