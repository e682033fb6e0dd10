"""A user error fails an Airflow task at once; anything else is retried as configured (a real DAG
run with dag.test(), the task instances read back from Airflow's metadata database)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

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


@pytest.mark.airflow
def test_a_task_with_a_user_error_is_not_retried_and_a_transient_one_is(airflow_db):
    from airflow.models import TaskInstance
    from airflow.sdk import DAG
    from airflow.utils.session import create_session

    from vigil.airflow.tasks import task

    with DAG("fail_fast_probe", schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
             default_args={"retries": 2, "retry_delay": timedelta(seconds=1)}) as dag:

        @task
        def bad_form():
            raise FormError("form field 'zoo': 'mine' is not a zoo")

        @task
        def flaky():
            raise ConnectionError("warehouse unreachable")

        bad_form()
        flaky()

    dr = dag.test(logical_date=datetime.now(timezone.utc))
    assert dr.state == "failed"
    with create_session() as s:
        tries = {ti.task_id: (ti.state, ti.try_number) for ti in s.query(TaskInstance).filter_by(dag_id="fail_fast_probe")}
    assert tries["bad_form"] == ("failed", 1), tries
    assert tries["flaky"] == ("failed", 3), tries
