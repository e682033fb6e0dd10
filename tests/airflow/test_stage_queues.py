"""Every stage operator goes to the Celery queue its catalogue entry says: `gpu` for a GPU stage,
`default` for the rest, whatever the runner; the DAGs' own stage tasks too."""

from __future__ import annotations

import pytest

from contract.stages import DEFAULT_QUEUE, GPU_QUEUE, STAGES
from vigil.airflow.stage_runner import STAGES as RUNNER_STAGES
from vigil.airflow.stage_runner import stage_operator
from vigil.settings import get_settings


@pytest.mark.parametrize("runner", ["local", "docker"])
def test_queue_follows_the_stage_catalogue(runner, monkeypatch):
    monkeypatch.setenv("VIGIL_STAGE_RUNNER", runner)
    settings = get_settings()
    for name, info in STAGES.items():
        op = stage_operator(RUNNER_STAGES[name], spec_path="/s.json", out_dir="/o", task_id=f"run_{info.name}",
                            settings=settings)
        assert op.queue == (GPU_QUEUE if info.resources.gpu else DEFAULT_QUEUE), name
    assert {s.resources.queue for s in STAGES.values()} == {GPU_QUEUE, DEFAULT_QUEUE}


def test_an_explicit_queue_wins(monkeypatch):
    monkeypatch.setenv("VIGIL_STAGE_RUNNER", "local")
    op = stage_operator(RUNNER_STAGES["evaluate"], spec_path="/s", out_dir="/o", queue="gpu-big")
    assert op.queue == "gpu-big"
