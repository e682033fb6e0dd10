"""The stage catalogue: every ``gpu-trainer <stage>`` with its module and the host resources it needs.

Both sides read this one table: the container's CLI (``gpu_trainer.stages`` maps a name to its
module) and the Airflow side (``vigil.airflow.stage_runner`` turns the resources into a GPU
``DeviceRequest`` and a pool slot under the docker runner, a Celery queue under the CeleryExecutor,
``nvidia.com/gpu`` limits under the kubernetes runner). A stage that needs no GPU runs in
Airflow's ``default_pool`` with no device request. Adding a stage is one line here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GPU_POOL = "gpu"
DEFAULT_POOL = "default_pool"
# Celery queues (CeleryExecutor): GPU stages go to workers started with `vigil worker --queues gpu`,
# everything else to Airflow's default queue (`[operators] default_queue`).
GPU_QUEUE = "gpu"
DEFAULT_QUEUE = "default"


@dataclass(frozen=True)
class StageResources:
    """What a stage needs from the host."""

    gpu: bool = True
    cpus: float = 2.0
    mem_limit: str | None = None
    shm_size: str | None = "2g"  # torch DataLoader workers use /dev/shm

    @property
    def pool(self) -> str:
        """The Airflow pool a run of the stage takes a slot of."""
        return GPU_POOL if self.gpu else DEFAULT_POOL

    @property
    def queue(self) -> str:
        """The Celery queue a run of the stage is sent to (ignored by the LocalExecutor)."""
        return GPU_QUEUE if self.gpu else DEFAULT_QUEUE


CPU_ONLY = StageResources(gpu=False)


@dataclass(frozen=True)
class StageInfo:
    name: str  # gpu-trainer CLI name, e.g. "train-backdoor"
    module: str  # the module with ``Spec`` and ``run(spec, out_dir)``
    resources: StageResources = field(default_factory=StageResources)


def _s(name: str, resources: StageResources | None = None) -> StageInfo:
    return StageInfo(name, "gpu_trainer.stages." + name.replace("-", "_"), resources or StageResources())


STAGES: dict[str, StageInfo] = {
    s.name: s
    for s in (
        _s("make-base"),
        _s("train-backdoor"),
        _s("validate-backdoor"),
        _s("train-probes"),
        _s("safety-train"),
        _s("test-persistence"),
        _s("evaluate"),
        _s("train-sklearn", CPU_ONLY),
        _s("evaluate-sklearn", CPU_ONLY),
        _s("score-llm"),
        _s("scan"),
        _s("detect"),
        _s("analyze"),
    )
}


def stage_info(name: str) -> StageInfo:
    """The catalogue entry of ``name``; a KeyError naming the known stages otherwise."""
    try:
        return STAGES[name]
    except KeyError:
        raise KeyError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}") from None
