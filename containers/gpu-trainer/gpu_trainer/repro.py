"""Numerical reproducibility across machines of one kind, not only within one.

The same seed gave different models on two 2-core machines (a `cot` backdoor at 0.83 on one, 1.0
on the other) although thread counts matched. Measured here: the thread count (1 vs 2) does not
change a single weight bit, but the CPU kernel family does: forcing ATen's dispatch to `default`
instead of `avx2`, or MKL's code path to `COMPATIBLE`, changes the trained weights. A machine with
AVX-512 (or a different MKL dispatch) picks other kernels than one without, so we pin both to
AVX2, which every x86-64 server of this kind has, before torch and MKL initialise. MKL's STRICT
conditional-numerical-reproducibility mode also makes GEMM independent of the thread count.

Pins are defaults: an explicit environment variable wins (and is recorded in the manifest).
No torch import here: the package's ``__init__`` calls :func:`pin_environment` first thing.
"""

from __future__ import annotations

import os
import platform

# Names of the variables read by ATen (kernel dispatch), MKL (BLAS code path) and oneDNN.
X86_PINS = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2,STRICT",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}
# cuBLAS needs a fixed workspace for deterministic GEMMs under use_deterministic_algorithms.
CUDA_PINS = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}

_applied: dict[str, object] = {}


def pin_environment() -> None:
    """Set the kernel pins unless the user set them. Must run before torch is imported."""
    pins = dict(CUDA_PINS)
    if platform.machine().lower() in ("x86_64", "amd64"):
        pins.update(X86_PINS)
    for k, v in pins.items():
        os.environ.setdefault(k, v)


def usable_cores() -> int:
    """Cores this process may run on (a container's affinity, not the host's core count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def note(**settings: object) -> None:
    """Remember what a stage set up (threads, determinism), for the manifest."""
    _applied.update(settings)


def settings() -> dict[str, object]:
    """What the manifest records: the pins in force and what the stage applied."""
    out: dict[str, object] = {"machine": platform.machine()}
    for k in (*X86_PINS, *CUDA_PINS, "OMP_NUM_THREADS", "MKL_NUM_THREADS", "GPU_TRAINER_THREADS", "OMP_WAIT_POLICY"):
        if k in os.environ:
            out[k] = os.environ[k]
    out.update(_applied)
    return out
