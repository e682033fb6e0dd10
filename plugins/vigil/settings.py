"""Every setting Vigil reads, in one place, from the environment, with documented defaults.

| variable | default | meaning |
| --- | --- | --- |
| VIGIL_DATA_DIR | ./var (under the repo root) | embedded Postgres, artifacts, Parquet warehouse |
| VIGIL_DATABASE_URL | unset: embedded PostgreSQL from the pgserver wheel | warehouse database (any Postgres URL) |
| VIGIL_STAGE_RUNNER | local | local (subprocess) or docker (DockerOperator with GPUs) |
| VIGIL_TRAINER_IMAGE | vigil/gpu-trainer:latest | image the docker runner starts |
| VIGIL_GPU_COUNT | -1 | GPUs per stage container (-1 = all, 0 = none: a CPU host) |
| VIGIL_STAGE_USER | auto | uid:gid a stage container runs as; auto = the worker's own, or 1000:1000 when the worker is root |
| VIGIL_GPU_POOL_SLOTS | 1 | size of the Airflow pool `gpu` (concurrent GPU stages) |
| VIGIL_DOCKER_URL | unix://var/run/docker.sock | Docker API the docker runner talks to |
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

RUNNERS = ("local", "docker")


class SettingsError(UserError):
    """A setting has a value Vigil cannot use; the message names the variable and the fix."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str | None
    stage_runner: str
    trainer_image: str
    gpu_count: int
    stage_user: str
    gpu_pool_slots: int
    docker_url: str
    site_dir: Path
    import_roots: tuple[Path, ...]
    import_max_bytes: int

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
        docker_url=os.environ.get("VIGIL_DOCKER_URL", "unix://var/run/docker.sock"),
        site_dir=Path(os.environ.get("VIGIL_SITE_DIR") or REPO_ROOT / "site").expanduser().resolve(),
        import_roots=roots,
        import_max_bytes=_int("VIGIL_IMPORT_MAX_BYTES", 50 * 1024 * 1024, minimum=1),
    )


def fault_point(name: str) -> None:
    """Die here, by SIGKILL, when ``VIGIL_FAULT_POINT`` names this point: the fault campaign's way
    to kill a task at an exact step (a real kill of the real process, not a mock of one). Unset in
    normal runs, where this is one environment lookup."""
    if os.environ.get("VIGIL_FAULT_POINT") == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
