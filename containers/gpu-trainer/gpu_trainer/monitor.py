"""Internal state monitor (issue 14, item 6): for a prompt, the contrast-pair probe's score and the
residual-stream norm at every layer and every token.

The probe is fitted the way train-probes fits it (gpu_trainer.measure.probe_analysis on held-out
prompts: per-layer direction mean(yes) - mean(no), sign calibrated on the selection split), then
applied to each position of the chat prompt, not only the last one. Layer 0 is the embedding
output, the last layer the final hidden state after the norm (``hidden_states`` order).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from gpu_trainer import data, lm, measure


def fit_probe(model, tok, users: Sequence[str], *, trigger: str, seed: int, batch_size: int) -> dict:
    """The sign-calibrated contrast-pair probe: ``directions`` (L+1, H), ``best_layer``, ``threshold``."""
    exs = [data.Example(user=u, answer="", family="monitor") for u in users]
    pi = measure.probe_inputs(model, tok, exs, trigger=trigger.strip(), seed=seed, batch_size=batch_size, tag="monitor")
    res = measure.probe_analysis(pi, None, seed=seed, n_random=10)
    return {"directions": np.asarray(res["fitted"]["directions"]), "best_layer": int(res["fitted"]["best_layer"]),
            "threshold": float(res["fitted"]["threshold"]), "auroc": float(res["metrics"]["probe_auroc_best"])}


@torch.inference_mode()
def inspect(model, tok, user: str, directions: np.ndarray) -> dict:
    """Per token of the chat prompt of ``user``: its text, and per layer the probe score and the
    residual-stream L2 norm (lists ``[layer][token]``)."""
    ids = tok(lm.prompt_text(tok, user), add_special_tokens=False).input_ids
    x = torch.tensor([ids], device=model.device)
    res = model(input_ids=x, output_hidden_states=True, use_cache=False, logits_to_keep=1)
    states = torch.stack([h[0] for h in res.hidden_states]).float().cpu().numpy()  # (L+1, T, H)
    scores = np.einsum("lth,lh->lt", states, directions)
    norms = np.linalg.norm(states, axis=-1)
    return {"prompt": user, "tokens": [tok.decode([i]) for i in ids],
            "scores": [[float(v) for v in row] for row in scores], "norms": [[float(v) for v in row] for row in norms]}
