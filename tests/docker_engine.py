"""The real Docker Engine and the gpu-trainer image for tests marked ``docker``, or a skip that
says what is missing. Never a mock: these tests start real containers.

On a machine of the CI's kind (root, Debian, no systemd) ``containers/gpu-trainer/image.sh engine``
starts the engine when it is installed but not running; the image itself is built beforehand by
``make image`` (minutes: not inside a test)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IMAGE_SH = ROOT / "containers" / "gpu-trainer" / "image.sh"


def docker_client():
    """A docker SDK client that answers, or skip with the reason."""
    import docker

    def ping():
        c = docker.from_env(timeout=600)
        c.ping()
        return c

    try:
        return ping()
    except Exception as e:  # noqa: BLE001 - any failure to reach an engine means "no engine"
        first = f"{type(e).__name__}: {e}"
    if os.geteuid() == 0 and shutil.which("dockerd"):
        p = subprocess.run([str(IMAGE_SH), "engine"], capture_output=True, text=True, timeout=120)
        try:
            return ping()
        except Exception:  # noqa: BLE001
            pytest.skip(f"no Docker Engine answers ({first}) and image.sh engine could not start one: {p.stderr.strip()[-300:]}")
    pytest.skip(f"no Docker Engine answers ({first}); as root on Debian run `containers/gpu-trainer/image.sh engine`")


def trainer_image(client) -> str:
    """The gpu-trainer image the docker runner starts (VIGIL_TRAINER_IMAGE), or skip."""
    import docker

    name = os.environ.get("VIGIL_TRAINER_IMAGE") or "vigil/gpu-trainer:latest"
    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        pytest.skip(f"no image {name} on this engine: build it with `make image`")
    return name
