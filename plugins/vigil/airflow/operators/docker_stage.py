"""StageDockerOperator: ``DockerOperator`` that runs a stage container as the right uid:gid.

Imported only by the docker runner (the provider pulls the docker SDK).

Who owns what the stage writes, without world-writable folders: the container runs as the
worker's own uid:gid (``VIGIL_STAGE_USER=auto``), the user that made the stage's folder (the spec
task) and reads, records and deletes what is in it. Every file on the host then belongs to that
user, as with the local runner. A worker running as root (a CI machine, a root Airflow container)
does not run the stage as root: it gives the stage's own folders to the image's unprivileged user
(``chown -R`` of ``--out``, and of each item's folder for ``batch``; nothing else of the store),
which root may and a non-root worker never needs. ``VIGIL_STAGE_USER=uid:gid`` names the user
outright (e.g. a service account sharing a group with the workers).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from airflow.providers.docker.operators.docker import DockerOperator

# The image's own unprivileged user (containers/gpu-trainer/Dockerfile).
IMAGE_USER = "1000:1000"


def stage_user(setting: str, worker: tuple[int, int]) -> str:
    """uid:gid a stage container runs as: the setting, or for ``auto`` the worker's own uid:gid,
    the image's user when the worker is root."""
    if setting != "auto":
        return setting
    uid, gid = worker
    return IMAGE_USER if uid == 0 else f"{uid}:{gid}"


def stage_folders(command: list[Any]) -> list[Path]:
    """The folders a stage writes: ``--out``, and for ``batch`` each item's ``out_dir`` (from the
    batch spec). Only those that exist: the spec task made them."""
    argv = [str(a) for a in command]
    folders = [Path(argv[argv.index("--out") + 1])] if "--out" in argv[:-1] else []
    if len(argv) > 1 and argv[1] == "batch" and "--spec" in argv[:-1]:
        try:
            items = json.loads(Path(argv[argv.index("--spec") + 1]).read_text()).get("items", [])
            folders += [Path(i["out_dir"]) for i in items if isinstance(i, dict) and i.get("out_dir")]
        except (OSError, ValueError, AttributeError):
            pass  # the stage itself reports an unreadable spec
    return [f for f in folders if f.is_dir()]


class StageDockerOperator(DockerOperator):
    """``DockerOperator`` whose ``user`` is chosen when it runs, from ``stage_user_setting``."""

    def __init__(self, *, stage_user_setting: str = "auto", **kwargs: Any):
        super().__init__(**kwargs)
        self.stage_user_setting = stage_user_setting

    def execute(self, context: Any) -> Any:
        self.user = stage_user(self.stage_user_setting, (os.getuid(), os.getgid()))
        uid, gid = (int(x) for x in self.user.split(":"))
        if os.getuid() == 0 and uid != 0:
            for folder in stage_folders(self.command):
                for p in (folder, *folder.rglob("*")):
                    os.chown(p, uid, gid, follow_symlinks=False)
        return super().execute(context)
