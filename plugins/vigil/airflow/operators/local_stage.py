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
        worker's environment.
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
            env={**os.environ, **{k: str(v) for k, v in self.env.items()}},
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

    @staticmethod
    def _error_line(tail: deque[str]) -> str:
        for line in reversed(tail):
            if "error:" in line:
                return line.strip()
        return tail[-1].strip() if tail else "no output"

    def on_kill(self) -> None:
        if self._proc and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
