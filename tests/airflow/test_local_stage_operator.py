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
