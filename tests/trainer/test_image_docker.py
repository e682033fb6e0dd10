"""The built gpu-trainer image, in real containers: slim (no Airflow, no Vigil core, no site
builder), non-root, and its CLI knows every stage. Needs a Docker Engine and `make image`."""

from __future__ import annotations

import json

import pytest

from tests.docker_engine import docker_client, trainer_image

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def image():
    client = docker_client()
    return client, trainer_image(client)


def _run(image, *args: str, entrypoint=None) -> str:
    client, name = image
    out = client.containers.run(name, list(args), entrypoint=entrypoint, network_mode="host", remove=True,
                                stdout=True, stderr=True)
    return out.decode()


def test_image_is_slim_and_non_root(image):
    probe = ("import importlib.util as u, json, os; print(json.dumps({'uid': os.getuid(), "
             "'found': {m: u.find_spec(m) is not None for m in "
             "['airflow', 'vigil', 'site_builder', 'gpu_trainer', 'evaluation', 'contract', 'torch', 'shap']}}))")
    got = json.loads(_run(image, "-c", probe, entrypoint=["python"]).strip().splitlines()[-1])
    assert got["uid"] == 1000
    assert got["found"] == {"airflow": False, "vigil": False, "site_builder": False, "gpu_trainer": True,
                            "evaluation": True, "contract": True, "torch": True, "shap": True}
    err = _run(image, "-c", "import airflow", entrypoint=["sh", "-c", 'python "$@" 2>&1; echo "exit=$?"', "sh"])
    assert "ModuleNotFoundError: No module named 'airflow'" in err and "exit=1" in err


def test_gpu_trainer_stages_lists_every_stage(image):
    from contract.stages import STAGES

    out = _run(image, "stages")
    listed = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert set(STAGES) <= listed, set(STAGES) - listed
