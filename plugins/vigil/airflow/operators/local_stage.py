"""LocalStageOperator: run a stage command as a subprocess on the worker (the embedded default)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import deque
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException


def threads_per_stage() -> int:
    """Torch threads for one stage process: the worker's cores shared by the task slots that may
    run a stage at the same time (the executor's parallelism, or a Celery worker's concurrency).

    Every stage process otherwise takes one thread per core, so four nightly chunks on two cores
    ran eight OpenMP threads that wait on each other at every barrier: measured with two stage
    processes on two cores (bench/nightly_throughput.py), a tiny model's evaluation took 2.9 s a
    version with two threads each and 1.5 s with one.
    """
    from airflow.configuration import conf

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    executor = conf.get("core", "executor", fallback="") or ""
    key = ("celery", "worker_concurrency") if "Celery" in executor else ("core", "parallelism")
    slots = conf.getint(*key, fallback=1) or 1
    return max(1, cores // max(1, slots))


class StageFailed(AirflowException):
    """The stage process exited non-zero; the message is the stage's own last error line."""


class LocalStageOperator(BaseOperator):
    """Run ``command`` in a subprocess, stream its output into the task log, and fail the task
    with the stage's error message when it exits non-zero.

    It is the same command the docker runner sends to the gpu-trainer container, so a stage
    behaves the same on a laptop and on a GPU host.

    :param command: argv list (templated). No shell is involved, so values from trigger forms
        cannot inject commands.
    :param env: extra environment variables for the process (templated); merged over the
        worker's environment. Unless it or the worker sets ``GPU_TRAINER_THREADS``, the process
        gets :func:`threads_per_stage` torch threads; unless ``GPU_TRAINER_EXIT_WITH_PARENT`` is
        set, it is ``1``: the stage stops itself when this task's process dies (SIGKILL included).
    :param cwd: working directory for the process (default: the worker's).
    :param tail_lines: how many of the last output lines to keep for the failure message.
    """

    template_fields: Sequence[str] = ("command", "env")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        command: list[str],
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        tail_lines: int = 40,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.command = command
        self.env = env or {}
        self.cwd = cwd
        self.tail_lines = tail_lines
        self._proc: subprocess.Popen[str] | None = None

    def execute(self, context: Any) -> None:
        argv = [str(a) for a in self.command]
        self.log.info("running stage: %s", " ".join(argv))
        tail: deque[str] = deque(maxlen=self.tail_lines)
        self._proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            cwd=self.cwd,
            env=self._environment(),
            start_new_session=True,  # so on_kill can stop the whole process group
        )
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            self.log.info("%s", line)
        code = self._proc.wait()
        if code != 0:
            raise StageFailed(f"stage exited with code {code}: {self._error_line(tail)}")

    def _environment(self) -> dict[str, str]:
        env = {**os.environ, **{k: str(v) for k, v in self.env.items()}}
        # the stage stops itself if this task process dies without on_kill (SIGKILL, a lost worker)
        env.setdefault("GPU_TRAINER_EXIT_WITH_PARENT", "1")
        if "GPU_TRAINER_THREADS" not in env:
            env["GPU_TRAINER_THREADS"] = str(threads_per_stage())
            self.log.info("stage threads: %s (cores / concurrent task slots; GPU_TRAINER_THREADS overrides)",
                          env["GPU_TRAINER_THREADS"])
        return env

    @staticmethod
    def _error_line(tail: deque[str]) -> str:
        for line in reversed(tail):
            if "error:" in line:
                return line.strip()
        return tail[-1].strip() if tail else "no output"

    def on_kill(self) -> None:
        if self._proc and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
