"""StageKubernetesPodOperator: a stage run as a Kubernetes pod of the gpu-trainer image.

Imported only by the kubernetes runner (``VIGIL_STAGE_RUNNER=kubernetes``; the cncf-kubernetes
provider is in the ``fleet`` extra). The pod runs the same argv as the local and docker runners
(``gpu-trainer <stage> --spec SPEC --out DIR``) with:

- ``nvidia.com/gpu`` limits (``VIGIL_GPU_COUNT``) for a GPU stage, and then the GPU node selector
  and tolerations of ``VIGIL_K8S_GPU_NODE_SELECTOR`` / ``VIGIL_K8S_GPU_TOLERATIONS``; a CPU stage
  gets neither and is scheduled on any node;
- the artifact store from a ReadWriteMany PersistentVolumeClaim (``VIGIL_K8S_ARTIFACTS_PVC``)
  mounted at the same path as on the workers, so paths in specs and manifests mean the same on
  both sides (as the docker runner's bind mount does);
- ``/dev/shm`` as a memory-backed ``emptyDir`` of the stage's ``shm_size`` (torch DataLoader workers);
- the image's unprivileged user (1000:1000, ``fsGroup`` 1000 so the claim is writable without
  world-writable folders), no privilege escalation, every capability dropped;
- an environment with no secrets (the stage needs no database credentials), the pod deleted
  when it ends, failed or not.

Nothing is read or contacted while the operator is built (no cluster, no file): the pod is made
when the task runs, on the worker, and :meth:`build_pod_request_obj` with ``dry_run=True`` shows
it without a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import models as k8s

# The image's own unprivileged user (containers/gpu-trainer/Dockerfile).
IMAGE_UID = 1000
IMAGE_GID = 1000
GPU_RESOURCE = "nvidia.com/gpu"


def _quantity(mem: str | None) -> str | None:
    """Docker's memory spelling (``8g``, ``512m``) as a Kubernetes quantity (``8Gi``, ``512Mi``)."""
    if not mem:
        return None
    units = {"k": "Ki", "m": "Mi", "g": "Gi", "t": "Ti"}
    mem = mem.strip()
    return mem[:-1] + units[mem[-1].lower()] if mem[-1].lower() in units and mem[:-1].isdigit() else mem


class StageKubernetesPodOperator(KubernetesPodOperator):
    """Run ``gpu-trainer <stage>`` in a pod with the stage's resources.

    :param command: the stage argv, ``[executable, stage, "--spec", SPEC, "--out", DIR]``
        (elements may be XComArgs or templates: the arguments are templated). The first element
        becomes the container command, the rest its arguments.
    :param stage_name: the catalogue's stage name, for the pod's name and ``vigil.stage`` label.
    :param image: the gpu-trainer image (``VIGIL_TRAINER_IMAGE``).
    :param namespace: namespace of the pod (``VIGIL_K8S_NAMESPACE``).
    :param artifacts_path: the artifact store's path on the workers; the claim is mounted there.
    :param artifacts_pvc: name of the ReadWriteMany PersistentVolumeClaim holding the store.
    :param gpu_count: GPUs the pod requests as ``nvidia.com/gpu`` limits; 0 for none (CPU stages
        always get 0).
    :param gpu_node_selector: node labels a GPU pod must run on (ignored when ``gpu_count`` is 0).
    :param gpu_tolerations: ``(key, value or None, effect)`` tolerations of a GPU pod; ``None``
        value = operator ``Exists`` (ignored when ``gpu_count`` is 0).
    :param cpus: CPU request of the container (the stage catalogue's ``cpus``).
    :param mem_limit: memory limit in Docker's spelling (``16g``) or as a quantity, or None.
    :param shm_size: size of the memory-backed ``/dev/shm``, or None for the node's default.
    :param stage_env: environment of the stage process (non-secret values only).
    :param service_account: service account of the pod, or None for the namespace's default.
    :param kubernetes_conn_id: Airflow connection of the cluster (``VIGIL_K8S_CONN_ID``).
    :param kwargs: the remaining ``KubernetesPodOperator``/``BaseOperator`` arguments (task_id,
        pool, queue, retries, ...).
    """

    def __init__(
        self,
        *,
        command: Sequence[Any],
        stage_name: str,
        image: str,
        namespace: str,
        artifacts_path: str,
        artifacts_pvc: str,
        gpu_count: int = 0,
        gpu_node_selector: Mapping[str, str] | None = None,
        gpu_tolerations: Sequence[tuple[str, str | None, str]] = (),
        cpus: float | None = None,
        mem_limit: str | None = None,
        shm_size: str | None = None,
        stage_env: Mapping[str, str] | None = None,
        service_account: str | None = None,
        kubernetes_conn_id: str = "kubernetes_default",
        **kwargs: Any,
    ) -> None:
        if gpu_count < 0:
            raise ValueError(f"gpu_count={gpu_count}: a pod requests a number of GPUs (0 for none)")
        limits: dict[str, str] = {}
        requests: dict[str, str] = {}
        if gpu_count:
            limits[GPU_RESOURCE] = str(gpu_count)
        if cpus:
            requests["cpu"] = str(cpus)
        if mem_limit:
            limits["memory"] = requests["memory"] = _quantity(mem_limit)
        volumes = [k8s.V1Volume(name="artifacts",
                                persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name=artifacts_pvc))]
        mounts = [k8s.V1VolumeMount(name="artifacts", mount_path=artifacts_path)]
        if shm_size:
            volumes.append(k8s.V1Volume(name="dshm", empty_dir=k8s.V1EmptyDirVolumeSource(
                medium="Memory", size_limit=_quantity(shm_size))))
            mounts.append(k8s.V1VolumeMount(name="dshm", mount_path="/dev/shm"))
        super().__init__(
            namespace=namespace,
            image=image,
            cmds=[str(command[0])],
            arguments=list(command[1:]),
            name=f"vigil-{stage_name}",
            random_name_suffix=True,
            labels={"app.kubernetes.io/part-of": "vigil", "vigil.stage": stage_name},
            env_vars={k: str(v) for k, v in (stage_env or {}).items()},
            container_resources=k8s.V1ResourceRequirements(limits=limits or None, requests=requests or None),
            node_selector=dict(gpu_node_selector or {}) if gpu_count else None,
            tolerations=[k8s.V1Toleration(key=key, operator="Exists" if value is None else "Equal", value=value,
                                          effect=effect) for key, value, effect in gpu_tolerations] if gpu_count else None,
            volumes=volumes,
            volume_mounts=mounts,
            security_context=k8s.V1PodSecurityContext(run_as_user=IMAGE_UID, run_as_group=IMAGE_GID,
                                                      fs_group=IMAGE_GID, run_as_non_root=True),
            container_security_context=k8s.V1SecurityContext(
                allow_privilege_escalation=False, capabilities=k8s.V1Capabilities(drop=["ALL"])),
            service_account_name=service_account,
            kubernetes_conn_id=kubernetes_conn_id,
            on_finish_action="delete_pod",
            get_logs=True,
            **kwargs,
        )
