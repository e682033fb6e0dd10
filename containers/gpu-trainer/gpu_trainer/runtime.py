"""Process-level setup shared by every stage: device, threads, seeds, logging, progress, versions."""

from __future__ import annotations

import functools
import logging
import os
import platform
import random
import sys
import time
from importlib import metadata

import numpy as np
import torch

from contract.errors import UserError
from gpu_trainer import repro

log = logging.getLogger("gpu_trainer")


def setup_logging() -> None:
    if not log.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(asctime)s gpu-trainer %(levelname)s %(message)s", "%H:%M:%S"))
        log.addHandler(h)
        log.setLevel(logging.INFO)
        log.propagate = False


def set_threads() -> int:
    """One intra-op thread per usable core (GPU_TRAINER_THREADS overrides). ``os.cpu_count()`` would
    count the host's cores inside a container and oversubscribe; interop threads stay at 1 because
    our graphs are sequential. The count does not change results (see ``repro``), it is recorded.

    The same count caps NumPy/SciPy's BLAS pool (OpenBLAS starts one thread per core whatever torch
    is told): the probes' logistic regressions spent 0.5 s of a 1.7 s nightly evaluation waiting
    on BLAS threads that the other stage processes on the same cores had descheduled, 0.08 s with one."""
    raw = os.environ.get("GPU_TRAINER_THREADS", "").strip()
    if raw and not raw.isdigit():
        raise UserError(f"GPU_TRAINER_THREADS={raw!r}: must be a whole number of torch threads (or unset: one per usable core)")
    n = int(raw) if raw else repro.usable_cores()
    torch.set_num_threads(max(1, n))
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=max(1, n), user_api="blas")  # not a `with`: the cap lasts for the process
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process (tests run several stages)
        pass
    return torch.get_num_threads()


def set_deterministic() -> None:
    """Deterministic kernels where torch has them; warn (not fail) on an op that has none, so a
    new model architecture still trains and the log says which op may vary."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def quiet_progress_bars() -> None:
    """Our own progress lines (steps, loss, ETA) replace the libraries' tqdm bars in task logs."""
    import transformers

    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # read when datasets is imported
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA device (use device='cpu' or 'auto')")
    return torch.device(name)


def describe_device(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"cuda:{dev.index or 0} ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup(device: str, seed: int) -> torch.device:
    """Everything a stage does before loading a model."""
    setup_logging()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    quiet_progress_bars()
    threads = set_threads()
    set_deterministic()
    seed_everything(seed)
    dev = resolve_device(device)
    repro.note(torch_threads=threads, torch_interop_threads=torch.get_num_interop_threads(),
               cpu_capability=torch.backends.cpu.get_cpu_capability(), deterministic_algorithms=True, seed=seed)
    log.info("device %s, seed %d", describe_device(dev), seed)
    return dev


def versions() -> dict[str, str]:
    """The installed versions a manifest records (looked up once a process: a batch records them
    for every item, and the metadata scan took 20 ms an item)."""
    return dict(_versions())


@functools.cache
def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "tokenizers", "scikit-learn", "numpy", "vigil"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    if torch.version.cuda:
        out["cuda"] = torch.version.cuda
    return out


class Progress:
    """Logs ``label i/n`` with rate and ETA at most every ``every`` seconds (and at the end)."""

    def __init__(self, label: str, total: int, every: float = 2.0):
        self.label, self.total, self.every = label, max(total, 1), every
        self.t0 = self.last = time.perf_counter()

    def update(self, done: int, extra: str = "") -> None:
        now = time.perf_counter()
        if now - self.last < self.every and done < self.total:
            return
        self.last = now
        el = now - self.t0
        eta = el / max(done, 1) * (self.total - done)
        log.info("%s %d/%d %s elapsed %.1fs eta %.1fs", self.label, done, self.total, extra, el, eta)
