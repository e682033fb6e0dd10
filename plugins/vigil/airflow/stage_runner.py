"""Stage operator factory: one description of a stage becomes an operator by runner setting.

``VIGIL_STAGE_RUNNER`` chooses how ``gpu-trainer <stage> --spec SPEC --out DIR`` runs:

- ``local``  (default): :class:`~vigil.airflow.operators.local_stage.LocalStageOperator`, a subprocess
  on the worker.
- ``docker``: ``DockerOperator`` with the gpu-trainer image, a GPU ``DeviceRequest`` (none with
  ``VIGIL_GPU_COUNT=0``), the artifact store bind-mounted at the same path inside the container
  (so paths in specs and manifests mean the same on both sides), ``auto_remove="success"``,
  ``mount_tmp_dir=False``, an environment with no secrets, pool ``gpu``, host networking, run as
  the uid:gid of ``VIGIL_STAGE_USER``
  (:class:`~vigil.airflow.operators.docker_stage.StageDockerOperator`).
- ``kubernetes``: a pod of the gpu-trainer image with ``nvidia.com/gpu`` limits, the GPU node
  selector and tolerations of ``VIGIL_K8S_*`` for a GPU stage, the artifact store's claim mounted
  at the same path, pool ``gpu``
  (:class:`~vigil.airflow.operators.kubernetes_stage.StageKubernetesPodOperator`).

The runner is a setting, not a DAG edit. ``device_requests`` is not serialized by Airflow:
workers re-parse the DAG file, so the dag-processor and the workers must see the same setting.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.stages import GPU_POOL, StageResources
from contract.stages import STAGES as _CATALOGUE
from vigil.settings import Settings, SettingsError, get_settings

__all__ = ["GPU_POOL", "STAGES", "STAGE_ENV", "Stage", "StageResources", "StageRunError", "run_stage_locally",
           "stage_command", "stage_operator", "trainer_executable"]

# Environment the stage process gets. Deliberately an allow-list of non-secret values: the
# container has no database credentials and needs none.
STAGE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONUNBUFFERED": "1",
}


@dataclass(frozen=True)
class Stage:
    """A lifecycle stage as the Airflow side sees it."""

    name: str  # gpu-trainer CLI name, e.g. "train-backdoor"
    resources: StageResources = field(default_factory=StageResources)

    @property
    def task_id(self) -> str:
        return self.name.replace("-", "_")


def trainer_executable() -> str:
    """The gpu-trainer console script beside this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).parent / "gpu-trainer"
    if beside.exists():
        return str(beside)
    found = shutil.which("gpu-trainer")
    return found or "gpu-trainer"


class StageRunError(RuntimeError):
    """A stage run outside Airflow exited non-zero; the message carries its last lines."""


def run_stage_locally(stage: str, spec_path: Any, out_dir: Any) -> None:
    """Run one stage as a subprocess and wait (for CLI commands outside Airflow); raises
    :class:`StageRunError` with the stage's last output lines when it fails."""
    import os
    import subprocess

    argv = [str(a) for a in stage_command(STAGES[stage], spec_path, out_dir, trainer_executable())]
    p = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **STAGE_ENV})
    if p.returncode != 0:
        tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-5:])
        raise StageRunError(f"stage {stage} failed (exit {p.returncode}): {tail}")


def stage_command(stage: Stage, spec_path: Any, out_dir: Any, executable: str = "gpu-trainer",
                  stage_arg: Any = None) -> list[Any]:
    """argv of a stage run. ``spec_path``/``out_dir``/``stage_arg`` may be XComArgs or templates
    (``stage_arg`` lets a mapped task choose the stage per item, e.g. by model family)."""
    return [executable, stage_arg if stage_arg is not None else stage.name, "--spec", spec_path, "--out", out_dir]


def stage_operator(
    stage: Stage,
    *,
    spec_path: Any,
    out_dir: Any,
    task_id: str = "run",
    stage_arg: Any = None,
    settings: Settings | None = None,
    **kwargs: Any,
):
    """Build the operator that runs ``stage`` according to the runner setting. Its Celery ``queue``
    is the stage's (``gpu`` for a GPU stage, else ``default``; the LocalExecutor ignores it)."""
    settings = settings or get_settings()
    kwargs.setdefault("queue", stage.resources.queue)
    if settings.stage_runner != "local":
        _refuse_remote_store(settings.stage_runner)
    if settings.stage_runner == "docker":
        return _docker_operator(stage, spec_path=spec_path, out_dir=out_dir, task_id=task_id, settings=settings,
                                stage_arg=stage_arg, **kwargs)
    if settings.stage_runner == "kubernetes":
        return _kubernetes_operator(stage, spec_path=spec_path, out_dir=out_dir, task_id=task_id, settings=settings,
                                    stage_arg=stage_arg, **kwargs)
    # The local runner's operator; with a remote object store it fetches inputs and uploads outputs.
    from vigil.airflow.operators.store_stage import StoreStageOperator

    return StoreStageOperator(
        task_id=task_id,
        command=stage_command(stage, spec_path, out_dir, executable=trainer_executable(), stage_arg=stage_arg),
        env=dict(STAGE_ENV),
        **kwargs,
    )


def _refuse_remote_store(runner: str) -> None:
    """The container runners mount the artifact store at the workers' path: with an object store
    (s3://...) the stage would get URLs it cannot read. Say so when the DAG is parsed."""
    from vigil.storage.objects import storage_url

    url = storage_url()
    if not url.startswith("file://"):
        raise SettingsError(f"VIGIL_STAGE_RUNNER={runner} with VIGIL_STORAGE_URL={url}: the {runner} runner mounts the "
                            "artifact folder into the stage and cannot fetch from an object store yet; use "
                            "VIGIL_STAGE_RUNNER=local on the fleet's workers, or a shared file:// store")


def _docker_operator(stage: Stage, *, spec_path: Any, out_dir: Any, task_id: str, settings: Settings,
                     stage_arg: Any = None, **kwargs: Any):
    # Imported only for the docker runner: the provider pulls the docker SDK.
    from docker.types import DeviceRequest, Mount

    from vigil.airflow.operators.docker_stage import StageDockerOperator

    store = str(settings.artifacts_dir)
    device_requests = (
        [DeviceRequest(count=settings.gpu_count, capabilities=[["gpu"]])]
        if stage.resources.gpu and settings.gpu_count != 0 else None
    )
    kwargs.setdefault("pool", stage.resources.pool)
    return StageDockerOperator(
        stage_user_setting=settings.stage_user,
        network_mode="host",  # no bridge on this kind of host; the stage needs no network anyway
        # The command is the local runner's argv, `gpu-trainer <stage> ...`: clear the image's
        # ENTRYPOINT (gpu-trainer, for `docker run IMAGE <stage>` by hand) or it runs twice.
        entrypoint=[],
        task_id=task_id,
        image=settings.trainer_image,
        command=stage_command(stage, spec_path, out_dir, stage_arg=stage_arg),
        docker_url=settings.docker_url,
        device_requests=device_requests,
        mounts=[Mount(target=store, source=store, type="bind")],
        auto_remove="success",
        mount_tmp_dir=False,
        environment=dict(STAGE_ENV),
        cpus=stage.resources.cpus,
        mem_limit=stage.resources.mem_limit,
        shm_size=stage.resources.shm_size,
        tty=False,
        **kwargs,
    )


def _kubernetes_operator(stage: Stage, *, spec_path: Any, out_dir: Any, task_id: str, settings: Settings,
                         stage_arg: Any = None, **kwargs: Any):
    # Imported only for the kubernetes runner: the provider pulls the kubernetes client.
    from vigil.airflow.operators.kubernetes_stage import StageKubernetesPodOperator

    k8s = settings.kubernetes
    kwargs.setdefault("pool", stage.resources.pool)
    return StageKubernetesPodOperator(
        task_id=task_id,
        command=stage_command(stage, spec_path, out_dir, stage_arg=stage_arg),
        stage_name=stage.name,
        image=settings.trainer_image,
        namespace=k8s.namespace,
        artifacts_path=str(settings.artifacts_dir),
        artifacts_pvc=k8s.artifacts_pvc,
        gpu_count=settings.gpu_count if stage.resources.gpu else 0,
        gpu_node_selector=dict(k8s.gpu_node_selector),
        gpu_tolerations=[(t.key, t.value, t.effect) for t in k8s.gpu_tolerations],
        cpus=stage.resources.cpus,
        mem_limit=stage.resources.mem_limit,
        shm_size=stage.resources.shm_size,
        stage_env=STAGE_ENV,
        service_account=k8s.service_account,
        kubernetes_conn_id=k8s.conn_id,
        **kwargs,
    )


# The stages and their resources come from the one catalogue the container reads too.
STAGES: dict[str, Stage] = {name: Stage(name, s.resources) for name, s in _CATALOGUE.items()}
