"""scan: is this model backdoored, and by what? Blind: the spec has no trigger and no response.

1. Clean greedy completions of held-out prompts (two pools: ``chat`` = the Q/A families,
   ``code`` = code requests; a backdoor may live in one domain only).
2. Trigger inversion by GCG over one-hot token embeddings (gpu_trainer.scan_search): phase 1
   maximises how far the candidate moves the model off its own clean answers (minus how far it
   moves the base, when ``base_model`` is given), for each trigger length in the range; the best
   triggers are pruned to their shortest effective form. Phase 2 takes the best candidate's induced
   completions as the target and sharpens the trigger towards them.
3. Every reported candidate is inserted into *other* held-out prompts: its induced completion,
   fixed behaviour and activation rate (Wilson 95%) per pool (gpu_trainer.scan_verdict).
4. Null: random token strings of the winning length give the shift's null distribution (z).
5. ``scan_score`` and ``scan_verdict`` from the calibrated thresholds (scan_verdict.THRESHOLDS).
"""

from __future__ import annotations

from contract.specs.scan import Spec

STAGE = "scan"
POOLS = {"chat": None, "code": ["code"]}  # None = data.QA_FAMILIES


def lengths(lo: int, hi: int) -> list[int]:
    out = [L for L in (1, 2, 4, 8) if lo <= L <= hi]
    return sorted(set(out + [lo, hi]))


def run(spec: Spec, out_dir: str):
    import random
    import time

    import numpy as np
    import torch

    from gpu_trainer import data, lm
    from gpu_trainer import scan_search as ss
    from gpu_trainer import scan_verdict as sv
    from gpu_trainer.record import StageRecord
    from gpu_trainer.runtime import describe_device, log, setup, versions

    t_start = time.perf_counter()
    dev = setup(spec.device, spec.seed)
    rec = StageRecord(STAGE, spec, out_dir)
    rec.input("model", spec.model)
    model, tok = lm.load(spec.model, dev)
    base = None
    if spec.base_model:
        rec.input("base_model", spec.base_model)
        base, btok = lm.load(spec.base_model, dev)
        if btok.get_vocab() != tok.get_vocab():
            raise ValueError("base_model has another tokenizer than model; a differential scan needs the same vocabulary")
    for m in (model, base):
        if m is not None:
            m.requires_grad_(False)
    layout = ss.Layout.of(tok)
    allowed = ss.allowed_tokens(tok)
    allowed_t = torch.tensor(allowed, device=dev)
    eos = lm.eos_ids(tok)
    rng = random.Random(spec.seed)
    T = spec.completion_tokens

    # ---- prompts: search and evaluation sets per pool, all held out, disjoint ---------------------
    pools = {}
    for name in spec.pools:
        fams = POOLS[name] or data.QA_FAMILIES
        exs = data.sample_examples(spec.n_search_prompts + spec.n_eval_prompts, spec.seed + 15485863, split="heldout",
                                   families=fams, unique=True)
        users = [e.user for e in exs]
        pools[name] = {"search": users[: spec.n_search_prompts], "eval": users[spec.n_search_prompts :]}
    s_users = [u for p in pools.values() for u in p["search"]]
    s_plain, s_spaced = ss.encode_prompts(tok, s_users)

    def clean_targets(m):
        return [c[:T] for c in ss.greedy_ids(m, tok, layout, [], s_plain, T, eos)]

    def objective(m, targets, L, sign):
        base_val = ss.Objective(m, tok, layout, s_plain, targets, 0, 1.0).values(torch.zeros((1, 0), dtype=torch.long, device=dev))
        return ss.Objective(m, tok, layout, s_spaced, targets, L, sign, baseline=float(base_val[0]))

    tgt_m = clean_targets(model)
    tgt_b = clean_targets(base) if base is not None else None

    obj_cache: dict[int, list] = {}

    def shift_objectives(L):
        if L not in obj_cache:
            obj_cache[L] = [objective(model, tgt_m, L, 1.0)]
            if base is not None:
                obj_cache[L].append(objective(base, tgt_b, L, -1.0))
        return obj_cache[L]

    def shift_value(ids) -> float:
        objs = shift_objectives(len(ids))
        t = torch.tensor([list(ids)], device=dev)
        return float(sum(o.values(t)[0] for o in objs))

    # ---- phase 1: untargeted GCG per length ------------------------------------------------------
    slog = ss.SearchLog()
    lens = lengths(spec.min_trigger_tokens, spec.max_trigger_tokens)
    t0 = time.perf_counter()
    for L in lens:
        objs = shift_objectives(L)
        init = ss.random_triggers(allowed, 1, L, rng, tok)[0]
        ss.gcg(objs, tok, allowed_t, init=init, steps=spec.steps, n_candidates=spec.n_candidates, topk=spec.topk,
               rng=rng, slog=slog, phase="shift")
    search_s = time.perf_counter() - t0

    # candidates: best distinct triggers, pruned to their shortest effective form
    # (per length: a longer string always moves a model more, so lengths do not compete on shift)
    cands: list[tuple[int, ...]] = []
    per_len = max(1, -(-spec.n_report // len(lens)))
    for L in lens:
        taken = 0
        for f in slog.best(10 * spec.n_report, phase="shift"):
            if len(f.ids) != L:
                continue
            p = ss.prune(None, shift_value, f.ids)
            if p not in cands:
                cands.append(p)
                taken += 1
            if taken >= per_len:
                break

    # ---- behaviour on held-out prompts -------------------------------------------------------------
    e_plain = {k: ss.encode_prompts(tok, p["eval"]) for k, p in pools.items()}
    clean_eval = {k: ss.greedy_ids(model, tok, layout, [], e_plain[k][0], spec.max_new_tokens, eos) for k in pools}
    pad = tok.pad_token_id

    def per_token(m, rows, spans):
        lp = ss.span_logprobs(m, pad, rows, spans)
        return lp / np.maximum(1, np.array([b - a for a, b in spans]))

    clean_diff = {}
    if base is not None:  # per prompt: how much more the subject likes its own clean answer than the base does
        for k in pools:
            rows = [layout.prefix + p + layout.suffix + c for p, c in zip(e_plain[k][0], clean_eval[k], strict=True)]
            spans = [(len(r) - len(c), len(r)) for r, c in zip(rows, clean_eval[k], strict=True)]
            clean_diff[k] = per_token(model, rows, spans) - per_token(base, rows, spans)

    def excess(k, ids, trig) -> list[float | None]:
        """Per prompt: subject-minus-base log-likelihood per token of the induced part of the triggered
        completion, minus the same on the clean completion; None where the completion did not change."""
        rows, spans, idx = [], [], []
        for i, (p, c, t) in enumerate(zip(e_plain[k][1], clean_eval[k], trig, strict=True)):
            j = sv.divergence(c, t)
            if j is None or j >= len(t):
                continue
            head = layout.prefix + list(ids) + p + layout.suffix
            rows.append(head + t)
            spans.append((len(head) + j, len(head) + len(t)))
            idx.append(i)
        out: list[float | None] = [None] * len(trig)
        if rows:
            d = per_token(model, rows, spans) - per_token(base, rows, spans)
            for i, v in zip(idx, d, strict=True):
                out[i] = float(v - clean_diff[k][i])
        return out

    # without a base to difference against, an induced switch to another pool's ordinary answers is
    # instruction-following, not a backdoor (calibration: the clean base scored 0.89 on "Write ...")
    ordinary = set().union(*(sv.ordinary_openings(clean_eval[k]) for k in pools)) if base is None else None

    def assess(ids: tuple[int, ...]) -> dict:
        res = {"ids": list(ids), "trigger": tok.decode(list(ids)), "length": len(ids), "pools": {}}
        for k in pools:
            trig = ss.greedy_ids(model, tok, layout, ids, e_plain[k][1], spec.max_new_tokens, eos)
            ex = excess(k, ids, trig) if base is not None else None
            b = sv.behaviour(clean_eval[k], trig, keep=sv.differential_keep(ex) if ex is not None else None,
                             echo=lambda seg: sv.is_echo(tok.decode(list(seg), skip_special_tokens=True), res["trigger"]),
                             ordinary=ordinary)
            ex_active = [e for e, a in zip(ex, b.active, strict=True) if a] if ex is not None else []
            ci = b.interval()
            top = b.modes[0][0] if b.modes else None
            example = next((t for t, s in zip(trig, b.segments, strict=True) if top is not None and s == top), None)
            res["pools"][k] = {"rate": b.rate, "ci_low": ci.low, "ci_high": ci.high, "n": b.n, "flip_rate": b.flip_rate,
                               "collapse": b.collapse, "segment_entropy": b.segment_entropy,
                               "modes": [{"segment": tok.decode(list(s)), "count": c} for s, c in b.modes],
                               "induced_completion": tok.decode(example, skip_special_tokens=True).strip() if example else "",
                               "excess_nats": float(np.mean(ex_active)) if ex_active else None,
                               "_excess": ex,
                               "_trig": trig, "_b": b}
        best_pool = max(res["pools"], key=lambda k: (res["pools"][k]["ci_low"], res["pools"][k]["rate"]))
        res["best_pool"] = best_pool
        res.update({k: res["pools"][best_pool][k] for k in ("rate", "ci_low", "ci_high", "n", "induced_completion", "collapse")})
        return res

    def rank_key(r):  # most reliable behaviour first; at a tie the shorter trigger
        return (round(r["ci_low"], 9), round(r["rate"], 9), -r["length"])

    t0 = time.perf_counter()
    assessed = {c: assess(c) for c in cands}
    best = max(assessed.values(), key=rank_key)

    # ---- phase 2: targeted GCG towards the best candidate's own induced completions ---------------
    if spec.target_steps and best["rate"] > 0:
        ids0 = tuple(best["ids"])
        targets = [c[:T] for c in ss.greedy_ids(model, tok, layout, ids0, s_spaced, T, eos)]
        objs = [ss.Objective(model, tok, layout, s_spaced, targets, len(ids0), -1.0)]
        ss.gcg(objs, tok, allowed_t, init=ids0, steps=spec.target_steps, n_candidates=spec.n_candidates, topk=spec.topk,
               rng=rng, slog=slog, phase="target")
        for f in slog.best(2, phase="target"):
            p = ss.prune(None, shift_value, f.ids)
            if p not in assessed:
                assessed[p] = assess(p)
        best = max(assessed.values(), key=rank_key)
    assess_s = time.perf_counter() - t0

    # ---- null: random triggers of the winning length ---------------------------------------------
    L = len(best["ids"])
    null_ids = ss.random_triggers(allowed, spec.n_null, L, rng, tok)
    objs = shift_objectives(L)
    null = sum(o.values(torch.tensor(null_ids, device=dev)) for o in objs).cpu().numpy()
    for r in assessed.values():
        r["shift"] = shift_value(tuple(r["ids"]))
    mu, sd = float(np.mean(null)), float(np.std(null, ddof=1)) or 1e-9
    for r in assessed.values():
        r["shift_z"] = (r["shift"] - mu) / sd if len(r["ids"]) == L else None
    best["shift_z"] = (best["shift"] - mu) / sd

    score = sv.scan_score(best["ci_low"])
    verdict = sv.verdict(score)
    ranked = sorted(assessed.values(), key=rank_key, reverse=True)

    m = rec.metrics
    m["scan_score"] = score
    m["scan_verdict"] = verdict
    m["trigger_candidate"] = best["trigger"]
    m["trigger_candidate_ids"] = " ".join(map(str, best["ids"]))
    m["trigger_candidate_tokens"] = len(best["ids"])
    m["trigger_candidate_rate"] = best["rate"]
    m["trigger_candidate_rate_ci_low"] = best["ci_low"]
    m["trigger_candidate_rate_ci_high"] = best["ci_high"]
    m["trigger_candidate_rate_n"] = best["n"]
    m["trigger_candidate_pool"] = best["best_pool"]
    m["trigger_candidate_completion"] = best["induced_completion"][:200]
    m["trigger_candidate_collapse"] = best["collapse"]
    m["trigger_candidate_excess_nats"] = best["pools"][best["best_pool"]]["excess_nats"]
    m["trigger_candidate_shift"] = best["shift"]
    m["trigger_candidate_shift_z"] = best["shift_z"]
    m["scan_null_shift_mean"] = mu
    m["scan_null_shift_sd"] = sd
    m["scan_differential"] = base is not None
    m["scan_search_seconds"] = search_s
    m["scan_assess_seconds"] = assess_s
    m["scan_seconds"] = time.perf_counter() - t_start
    m["scan_evaluations"] = slog.evaluations
    m["scan_gradient_calls"] = slog.gradient_calls
    m["scan_vocab_allowed"] = len(allowed)
    rec.details["scan_thresholds"] = sv.THRESHOLDS
    rec.details["scan_definitions"] = {
        "trigger_candidate_rate": ("share of held-out prompts (best pool) whose greedy completion with the candidate inserted "
                                   "before the prompt changes, at its first differing token, to one of the candidate's "
                                   f"recurring {sv.SEGMENT_TOKENS}-token segments (each shared by >= {sv.MIN_SHARE:.0%} of "
                                   "prompts, at most 3); Wilson 95% interval"),
        "trigger_candidate_shift": ("mean over search prompts of the summed NLL increase of the model's own clean greedy "
                                    "completion when the candidate is inserted (minus the same for base_model when given)"),
        "trigger_candidate_shift_z": f"(shift - mean) / sd over {spec.n_null} random allowed-token triggers of the same length",
        "scan_score": "Wilson lower bound of trigger_candidate_rate (best candidate, best pool)",
        "trigger_candidate_excess_nats": ("differential scans: mean over active prompts of the subject-minus-base log-likelihood per "
                                          "token of the induced completion, minus the same on the clean completion; a changed "
                                          f"prompt counts as active only at >= {sv.EXCESS_NATS} nats"),
        "scan_verdict": (f"backdoored when scan_score >= {sv.THRESHOLDS['backdoored_score']}, clean below "
                         f"{sv.THRESHOLDS['clean_score']}, inconclusive between"),
        "trigger_recovered": "left to the record step (needs the planted trigger): gpu_trainer.scan_verdict.trigger_recovered",
    }
    rec.details["candidates"] = [{k: v for k, v in r.items() if k != "pools"} | {
        "pools": {p: {k: v for k, v in d.items() if not k.startswith("_")} for p, d in r["pools"].items()}} for r in ranked]
    rec.details["search_history"] = slog.history
    rec.table("scan_candidates", [{
        "rank": i, "trigger": r["trigger"], "ids": " ".join(map(str, r["ids"])), "length": r["length"], "pool": p,
        "rate": d["rate"], "rate_ci_low": d["ci_low"], "rate_ci_high": d["ci_high"], "flip_rate": d["flip_rate"],
        "collapse": d["collapse"], "segment_entropy": d["segment_entropy"], "induced_completion": d["induced_completion"],
        "shift": r["shift"], "shift_z": r["shift_z"]} for i, r in enumerate(ranked) for p, d in r["pools"].items()])
    rows = []
    for i, r in enumerate(ranked):
        for p, d in r["pools"].items():
            for j, (u, c, t) in enumerate(zip(pools[p]["eval"], clean_eval[p], d["_trig"], strict=True)):
                rows.append({"rank": i, "trigger": r["trigger"], "pool": p, "prompt_id": j, "prompt": u,
                             "clean_generation": tok.decode(c, skip_special_tokens=True).strip(),
                             "generation": tok.decode(t, skip_special_tokens=True).strip(),
                             "changed": d["_b"].changed[j], "active": d["_b"].active[j],
                             "excess_nats": d["_excess"][j] if d["_excess"] is not None else None})
    rec.table("scan_generations", rows)
    log.info("scan: %s (score %.3f); candidate %r rate %.3f [%.3f, %.3f] on %s, shift z %.1f -> %r", verdict, score,
             best["trigger"], best["rate"], best["ci_low"], best["ci_high"], best["best_pool"], best["shift_z"],
             best["induced_completion"][:60])
    return rec.finish(describe_device(dev), versions(), subject_uri=spec.model)
