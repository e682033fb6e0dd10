"""Vigil's ``@task``: Airflow's, with user errors failing the task at once.

A :class:`contract.errors.UserError` (a bad form value, an unknown model, a refused document)
names the field and the fix; retrying meets the same input, so the task fails without spending
its retries (``AirflowFailException``) and the message is the error's own. Everything else (a
database that is down, a killed process) is raised as it is and retried as configured.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from airflow.sdk import task as _airflow_task

from contract.errors import UserError


def fail_fast(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, with a UserError turned into a failure that is not retried."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{type(e).__name__}: {e}") from e

    return run


def task(python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
    """``airflow.sdk.task`` (bare or with arguments) over :func:`fail_fast`."""
    if python_callable is not None:
        return _airflow_task(fail_fast(python_callable))
    return lambda fn: _airflow_task(**kwargs)(fail_fast(fn))
