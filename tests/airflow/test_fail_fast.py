"""A user error fails an Airflow task at once; anything else is retried as configured. The same
on a real DAG run: tests/airflow/test_lifecycle_dags.py::test_a_bad_form_value_fails_its_task_without_a_retry."""

from __future__ import annotations

import pytest

from contract.errors import UserError
from vigil.airflow.tasks import fail_fast
from vigil.lifecycle.specs import FormError
from vigil.registry.versions import NotFound, RegistryError


@pytest.mark.parametrize("error", [
    pytest.param(FormError("form field 'seeds': repeats a seed"), id="form"),
    pytest.param(NotFound("no model named 'x'"), id="registry"),
])
def test_user_errors_become_failures_that_keep_their_message(error):
    from airflow.sdk.exceptions import AirflowFailException

    def raises():
        raise error

    assert isinstance(error, UserError) and isinstance(error, ValueError)  # old `except ValueError` still catches
    with pytest.raises(AirflowFailException, match=str(error).replace("'", ".")):
        fail_fast(raises)()


def test_other_errors_pass_through_unchanged():
    def raises():
        raise ConnectionError("database down")

    with pytest.raises(ConnectionError, match="database down"):
        fail_fast(raises)()
    assert issubclass(RegistryError, UserError)
