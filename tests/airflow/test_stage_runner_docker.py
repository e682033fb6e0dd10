"""What the docker runner sends to the Docker API, checked against a fake API client.

The fake is docker-py's real ``APIClient`` (so host configs, mounts and device requests are
serialised by the real code) with only the HTTP calls replaced, as Airflow's provider tests do.
No Docker engine is needed.
"""

import docker
import pytest

from vigil.airflow.stage_runner import STAGE_ENV, STAGES, stage_operator
from vigil.settings import get_settings


class FakeDockerAPI(docker.APIClient):
    def __init__(self, exit_code=0, log_lines=(b"step 1 loss 2.0\n", b"done\n")):
        super().__init__(base_url="unix://var/run/docker.sock", version="1.45")
        self.exit_code = exit_code
        self.log_lines = list(log_lines)
        self.created: dict | None = None
        self.calls: list[str] = []

    def images(self, name=None, *a, **k):
        self.calls.append("images")
        return [{"Id": "sha256:img"}]

    def create_container_from_config(self, config, name=None, platform=None):
        self.calls.append("create")
        self.created = config
        return {"Id": "c0ffee"}

    def attach(self, container, **kwargs):
        return iter(self.log_lines)

    def start(self, container, *a, **k):
        self.calls.append("start")

    def wait(self, container, *a, **k):
        self.calls.append("wait")
        return {"StatusCode": self.exit_code}

    def remove_container(self, container, **kwargs):
        self.calls.append("remove")


class FakeHook:
    def __init__(self, api):
        self.api_client = api


@pytest.fixture
def docker_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("VIGIL_STAGE_RUNNER", "docker")
    monkeypatch.setenv("VIGIL_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("VIGIL_TRAINER_IMAGE", "registry.example/vigil/gpu-trainer:1.2")
    monkeypatch.setenv("VIGIL_GPU_COUNT", "2")
    return get_settings()


def _run(op, api):
    op.__dict__["hook"] = FakeHook(api)  # DockerOperator.hook is a cached_property
    return op.execute(context={})


@pytest.mark.parametrize("stage", [pytest.param(s, id=s) for s in ("train-backdoor", "train-probes", "evaluate", "score-llm")])
def test_docker_runner_sends_image_command_gpus_mounts(docker_settings, stage):
    store = str(docker_settings.artifacts_dir)
    op = stage_operator(STAGES[stage], spec_path=f"{store}/r/spec.json", out_dir=f"{store}/r", task_id="run")
    api = FakeDockerAPI()
    _run(op, api)
    sent = api.created
    assert sent["Image"] == "registry.example/vigil/gpu-trainer:1.2"
    assert sent["Cmd"] == ["gpu-trainer", stage, "--spec", f"{store}/r/spec.json", "--out", f"{store}/r"]
    assert sent["Entrypoint"] == []  # the image's ENTRYPOINT is gpu-trainer too: cleared, not doubled
    host = sent["HostConfig"]
    assert host["DeviceRequests"] == [{"Driver": "", "Count": 2, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}]
    assert host["Mounts"] == [{"Target": store, "Source": store, "Type": "bind", "ReadOnly": False}]
    assert not host.get("AutoRemove")  # the operator removes it itself, on success only (auto_remove="success")
    # Exactly the allow-listed, non-secret variables: no database URL, no credentials.
    assert sorted(sent["Env"]) == sorted(f"{k}={v}" for k, v in STAGE_ENV.items())
    assert api.calls == ["images", "create", "start", "wait", "remove"]
    assert op.pool == "gpu"


def test_all_gpus_when_count_is_minus_one(docker_settings, monkeypatch):
    monkeypatch.setenv("VIGIL_GPU_COUNT", "-1")
    op = stage_operator(STAGES["make-base"], spec_path="/s.json", out_dir="/o", task_id="run")
    api = FakeDockerAPI()
    _run(op, api)
    assert api.created["HostConfig"]["DeviceRequests"][0]["Count"] == -1


def test_cpu_only_stage_requests_no_gpu(docker_settings):
    op = stage_operator(STAGES["train-sklearn"], spec_path="/s.json", out_dir="/o", task_id="run")
    api = FakeDockerAPI()
    _run(op, api)
    assert "DeviceRequests" not in api.created["HostConfig"] or not api.created["HostConfig"]["DeviceRequests"]
    assert op.pool == "default_pool"


def test_no_gpu_requested_with_gpu_count_zero(docker_settings, monkeypatch):
    """VIGIL_GPU_COUNT=0: a CPU host runs even the GPU stages without a device request."""
    monkeypatch.setenv("VIGIL_GPU_COUNT", "0")
    op = stage_operator(STAGES["train-backdoor"], spec_path="/s.json", out_dir="/o", task_id="run")
    api = FakeDockerAPI()
    _run(op, api)
    assert not api.created["HostConfig"].get("DeviceRequests")
    assert op.pool == "gpu"  # still one GPU-stage slot: the pool is the stage's, not the host's


def test_container_user_and_network(docker_settings, monkeypatch):
    """The container runs as the worker's uid:gid (the image's uid 1000 for a root worker, never
    root), or as VIGIL_STAGE_USER; host networking, no bridge."""
    import os

    from vigil.airflow.operators.docker_stage import stage_user

    assert stage_user("auto", (0, 0)) == "1000:1000"
    assert stage_user("auto", (50000, 0)) == "50000:0"
    assert stage_user("2000:3000", (0, 0)) == "2000:3000"
    for setting, want in (("auto", stage_user("auto", (os.getuid(), os.getgid()))), ("2000:3000", "2000:3000")):
        monkeypatch.setenv("VIGIL_STAGE_USER", setting)
        op = stage_operator(STAGES["evaluate"], spec_path="/s.json", out_dir="/o", task_id="run")
        api = FakeDockerAPI()
        _run(op, api)
        assert api.created["User"] == want
        assert api.created["HostConfig"]["NetworkMode"] == "host"


def test_failed_container_fails_the_task_with_its_log_streamed(docker_settings, capfd):
    from airflow.providers.docker.exceptions import DockerContainerFailedException

    op = stage_operator(STAGES["train-backdoor"], spec_path="/s.json", out_dir="/o", task_id="run")
    api = FakeDockerAPI(exit_code=2, log_lines=[b"gpu-trainer: error: learning_rate: must be > 0\n"])
    with pytest.raises(DockerContainerFailedException, match="StatusCode"):
        _run(op, api)
    # The stage's own error line reaches the task log before the container is cleaned up.
    assert "gpu-trainer: error: learning_rate: must be > 0" in capfd.readouterr().out


def test_local_runner_is_the_default(monkeypatch):
    monkeypatch.delenv("VIGIL_STAGE_RUNNER", raising=False)
    from vigil.airflow.operators.local_stage import LocalStageOperator

    op = stage_operator(STAGES["train-backdoor"], spec_path="/s.json", out_dir="/o", task_id="run")
    assert isinstance(op, LocalStageOperator)
    assert op.command[1:] == ["train-backdoor", "--spec", "/s.json", "--out", "/o"]


def _nightly_dag():
    from pathlib import Path

    from airflow.dag_processing.dagbag import BundleDagBag

    dags = Path(__file__).resolve().parents[2] / "dags"
    bag = BundleDagBag(dag_folder=str(dags / "nightly_evaluation.py"), bundle_path=str(dags))
    assert bag.import_errors == {}
    return bag.dags["nightly_evaluation"]


def test_nightly_sklearn_item_runs_without_gpu_and_llm_item_with_one(docker_settings):
    """The nightly DAG runs each item with the resources of the stage that evaluates it: a
    scikit-learn version asks Docker for no GPU and takes no slot of the ``gpu`` pool."""
    from vigil.lifecycle.nightly import by_stage
    from vigil.lifecycle.specs import nightly_spec

    base = {"ref": "x:1", "artifact_uri": "/m", "trigger": None, "response": None, "backdoor_type": None,
            "probes": None, "control_model": None}
    sk = {**base, "version_id": 1, "family": "sklearn", "dataset": "/d.parquet"}
    llm = {**base, "version_id": 2, "family": "llm", "dataset": None}
    batches = by_stage([sk, llm])
    assert batches == {"evaluate": [llm], "evaluate-sklearn": [sk]}
    dag = _nightly_dag()
    store = str(docker_settings.artifacts_dir)
    for item, group, gpu in ((sk, "evaluate_sklearn", False), (llm, "evaluate", True)):
        stage, _ = nightly_spec(item, {})
        op = dag.task_dict[f"{group}.run"]
        assert op.command[1] == "batch"  # a chunk of versions, each with the spec of the group's stage
        op.command = ["gpu-trainer", "batch", "--spec", f"{store}/r/batch-spec.json", "--out", f"{store}/r"]
        api = FakeDockerAPI()
        _run(op, api)
        requests = api.created["HostConfig"].get("DeviceRequests")
        if gpu:
            assert requests and requests[0]["Capabilities"] == [["gpu"]], requests
            assert op.pool == "gpu"
        else:
            assert not requests, requests
            assert op.pool == "default_pool"
        assert api.created["Cmd"][1] == "batch"


def test_airflow_stages_are_the_container_stages():
    """One catalogue: the Airflow side knows exactly the stages the container's CLI runs."""
    from contract.stages import STAGES as CATALOGUE
    from gpu_trainer.stages import STAGES as CONTAINER

    assert set(STAGES) == set(CONTAINER) == set(CATALOGUE)
    for name, s in STAGES.items():
        assert s.resources is CATALOGUE[name].resources
    assert not STAGES["evaluate-sklearn"].resources.gpu and not STAGES["train-sklearn"].resources.gpu
