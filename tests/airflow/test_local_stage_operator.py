import sys

import pytest

from vigil.airflow.operators.local_stage import LocalStageOperator, StageFailed


def test_streams_output_and_succeeds(capfd):
    op = LocalStageOperator(task_id="t", command=[sys.executable, "-c", "print('step 1 loss 2.5'); print('done')"])
    op.execute({})
    assert "step 1 loss 2.5" in capfd.readouterr().out


def test_failure_carries_the_stage_error_line():
    code = "import sys; print('loading'); print('gpu-trainer: error: n_samples: must be >= 10', file=sys.stderr); sys.exit(2)"
    op = LocalStageOperator(task_id="t", command=[sys.executable, "-c", code])
    with pytest.raises(StageFailed, match=r"code 2: gpu-trainer: error: n_samples: must be >= 10"):
        op.execute({})


def test_env_is_passed_and_no_shell_is_involved(capfd):
    op = LocalStageOperator(task_id="t", command=[sys.executable, "-c", "import os, sys; print(os.environ['X'], sys.argv[1])", "$(rm -rf /); echo"],
                            env={"X": "hello"})
    op.execute({})
    assert "hello $(rm -rf /); echo" in capfd.readouterr().out


PRINT_THREADS = [sys.executable, "-c", "import os; print('threads=' + os.environ['GPU_TRAINER_THREADS'])"]


@pytest.mark.parametrize(("executor", "slots_var", "slots", "cores", "want"), [
    pytest.param("LocalExecutor", "AIRFLOW__CORE__PARALLELISM", "4", {0, 1}, "1", id="4-slots-on-2-cores"),
    pytest.param("LocalExecutor", "AIRFLOW__CORE__PARALLELISM", "2", set(range(8)), "4", id="2-slots-on-8-cores"),
    pytest.param("CeleryExecutor", "AIRFLOW__CELERY__WORKER_CONCURRENCY", "3", set(range(16)), "5", id="celery-concurrency"),
])
def test_a_stage_gets_the_cores_shared_by_the_slots(executor, slots_var, slots, cores, want, monkeypatch, capfd):
    monkeypatch.delenv("GPU_TRAINER_THREADS", raising=False)
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    monkeypatch.setenv(slots_var, slots)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: cores)
    LocalStageOperator(task_id="t", command=PRINT_THREADS).execute({})
    assert f"threads={want}" in capfd.readouterr().out


def test_threads_set_by_the_dag_or_the_worker_win(monkeypatch, capfd):
    monkeypatch.setenv("GPU_TRAINER_THREADS", "3")
    LocalStageOperator(task_id="t", command=PRINT_THREADS).execute({})
    assert "threads=3" in capfd.readouterr().out
    monkeypatch.delenv("GPU_TRAINER_THREADS")
    LocalStageOperator(task_id="t", command=PRINT_THREADS, env={"GPU_TRAINER_THREADS": "2"}).execute({})
    assert "threads=2" in capfd.readouterr().out
