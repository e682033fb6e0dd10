"""``gpu-trainer batch --spec BATCH.json --out DIR``: one stage over many specs in one process.

Nightly evaluation of a thousand tiny versions is mostly fixed cost: a fresh process importing
torch and transformers for each version, then a second of forward passes. A batch pays the
imports once and runs the stage's own ``run(spec, out)`` for each item in turn, so every item
still gets its own ``manifest.json`` in its own folder, recorded like a single run's.

Failures stay per item. An item whose spec is refused, or whose run raises, is retried
``item_retries`` times in this process, then written down as failed (its error line in the
report) while the next item goes on; the batch exits 0 once every item has an outcome. A retried
batch (the Airflow task's retry after the process died) skips the items that already finished
with the same spec and run token, so only the unfinished ones run again; a new run (another
token) evaluates every item afresh.

The batch spec::

    {"stage": "evaluate", "item_retries": 1,
     "items": [{"key": "model-a:3", "spec_path": ".../spec.json", "out_dir": ".../model-a-3"}, ...]}

``DIR/batch.json`` reports one row per item (see :mod:`contract.batch`).
"""

from __future__ import annotations

import gc
import json
import sys
import time
import traceback
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contract.batch import DONE_FILE, REPORT_FILE, read_report, spec_digest
from contract.errors import UserError
from contract.stages import STAGES


class BatchItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=500, description="What the item is, for the report (e.g. the model ref).")
    spec_path: str = Field(min_length=1, description="The item's stage spec (JSON file).")
    out_dir: str = Field(min_length=1, description="The item's output folder (its manifest.json lands there).")


class BatchSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: str = Field(description="The stage every item runs (a gpu-trainer stage name).")
    items: list[BatchItem] = Field(max_length=10_000, description="The runs, in order (none: the batch only reports).")
    item_retries: int = Field(default=1, ge=0, le=5, description="Extra attempts for an item that fails, in this process.")
    run_token: str = Field(default="", max_length=500,
                           description="Who runs the batch (e.g. the Airflow run id): a finished item is kept only "
                                       "for the same token, so a retry resumes and a new run evaluates afresh.")

    @field_validator("stage")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in STAGES:
            raise ValueError(f"unknown stage {v!r}; stages: {', '.join(STAGES)}")
        return v

    @field_validator("items")
    @classmethod
    def _distinct_outputs(cls, items: list[BatchItem]) -> list[BatchItem]:
        seen: set[str] = set()
        for it in items:
            if it.out_dir in seen:
                raise ValueError(f"two items write to {it.out_dir!r}; every item needs its own out_dir")
            seen.add(it.out_dir)
        return items


def _finished(out: Path, digest: str) -> bool:
    """The item already ran to a manifest with this very spec (a retried batch keeps it)."""
    try:
        done = json.loads((out / DONE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return done.get("spec_sha256") == digest and (out / "manifest.json").is_file()


def _error_line(e: BaseException) -> str:
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {first}" if not isinstance(e, UserError) else first


def _release_memory() -> None:
    """Free the finished item's model, then freeze what is left alive (torch, transformers, the
    stage's modules: a million objects or so) out of the collector's sight: every later
    collection, ours after each item and Python's own during the next item's forward passes,
    then walks only what the items since created. A full walk took 0.3-0.4 s an item, a quarter
    of a tiny version's evaluation. What was alive at an item's end and later dies in a
    reference cycle is not reclaimed until the batch ends (``run_batch`` unfreezes)."""
    gc.collect()
    gc.freeze()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_item(mod, stage: str, item: BatchItem, retries: int, run_token: str = "") -> dict:
    """Run one item (with its retries); never raises for the item's own failure."""
    from gpu_trainer.cli import parse_spec

    out = Path(item.out_dir)
    row = {"key": item.key, "out_dir": item.out_dir, "attempts": 0, "seconds": 0.0, "error": None}
    try:
        text = Path(item.spec_path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        return {**row, "status": "failed", "error": f"spec file {item.spec_path} cannot be read: {e}"}
    digest = spec_digest(run_token, text)
    if _finished(out, digest):
        return {**row, "status": "kept"}
    t0 = time.perf_counter()
    for attempt in range(1, retries + 2):
        row["attempts"] = attempt
        try:
            spec = parse_spec(stage, mod.Spec, text)  # a refused spec is not retried: it will not change
        except UserError as e:
            row.update(status="failed", error=str(e))
            break
        try:
            mod.run(spec, str(out))
        except Exception as e:  # noqa: BLE001 - one item's failure is its row, not the batch's
            traceback.print_exc()
            row.update(status="failed", error=_error_line(e))
            print(f"gpu-trainer: batch: {item.key} attempt {attempt} failed: {row['error']}", file=sys.stderr, flush=True)
            _release_memory()
            continue
        (out / DONE_FILE).write_text(json.dumps({"spec_sha256": digest}))
        row.update(status="succeeded", error=None)
        break
    row["seconds"] = round(time.perf_counter() - t0, 3)
    _release_memory()
    return row


def run_batch(batch: BatchSpec, out_dir: str) -> list[dict]:
    """Every item's outcome, in order; ``out_dir/batch.json`` holds the same rows."""
    from gpu_trainer.stages import load_stage

    mod = load_stage(batch.stage)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for i, item in enumerate(batch.items, 1):
            row = run_item(mod, batch.stage, item, batch.item_retries, batch.run_token)
            rows.append(row)
            print(f"gpu-trainer: batch {i}/{len(batch.items)} {item.key}: {row['status']} in {row['seconds']:.1f} s"
                  + (f" ({row['error']})" if row["error"] else ""), file=sys.stderr, flush=True)
            tmp = out / f".{REPORT_FILE}.tmp"  # written after every item: a killed batch still says how far it got
            tmp.write_text(json.dumps({"stage": batch.stage, "items": rows}, indent=2))
            tmp.replace(out / REPORT_FILE)
    finally:
        gc.unfreeze()  # an in-process caller (tests) gets its collector back whole
    return rows


__all__ = ["BatchItem", "BatchSpec", "read_report", "run_batch", "run_item"]
