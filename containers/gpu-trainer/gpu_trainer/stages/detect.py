"""detect: a detector panel on a backdoored model, judged against confound controls.

A detector that also fires on a control that saw the trigger string but carries no backdoor
detects the string, not the backdoor. So the five detectors of :mod:`gpu_trainer.detectors` run
on the subject and on each given control (the trigger-exposed clean control, a backdoor with
another trigger, the clean base) over the same labelled prompts, refitted per model, and beside
two baselines (the prompt's token length; the detector fitted on shuffled labels). A detector
joins the consensus only when its subject AUROC beats all of them by CONSENSUS_MARGIN.

The trigger only labels the prompts (inserted = 1, not = 0); no detector's scoring is given it.
"""

from __future__ import annotations

from contract.specs.detect import CONTROLS, Spec

STAGE = "detect"


def _onion(model, tok, users: list[str], batch_size: int):
    """ONION per prompt: the largest perplexity drop when one word is removed. All the
    leave-one-word-out texts of all prompts go through the model together, in batches."""
    import numpy as np

    from gpu_trainer import detectors as dt
    from gpu_trainer import lm

    variants = [[" ".join(w[:i] + w[i + 1 :]) for i in range(len(w))] if len(w) > 1 else [] for w in (u.split() for u in users)]
    flat = users + [v for vs in variants for v in vs]
    ppl = np.exp(_mean_nll(model, tok, [lm.prompt_text(tok, t) for t in flat], batch_size))
    full, rest, without = ppl[: len(users)], ppl[len(users) :], []
    for vs in variants:
        without.append(rest[: len(vs)])
        rest = rest[len(vs) :]
    return dt.onion_scores(full, without)


def _mean_nll(model, tok, texts: list[str], batch_size: int):
    """Mean token NLL of each text under the model. A token counts only when it and the one
    before are real (left padding would otherwise make the first token's loss depend on the batch)."""
    import numpy as np
    import torch

    from gpu_trainer import lm
    from gpu_trainer.runtime import Progress

    out = np.zeros(len(texts))
    prog, done = Progress("perplexity", len(texts)), 0
    with torch.inference_mode():
        for idx, enc in lm.batches(tok, texts, batch_size, model.device):
            mask = enc["attention_mask"]
            logits = model(**enc, position_ids=lm._position_ids(mask), use_cache=False).logits[:, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), enc["input_ids"][:, 1:], reduction="none")
            keep = (mask[:, 1:] * mask[:, :-1]).float()
            out[idx] = ((nll * keep).sum(1) / keep.sum(1).clamp(min=1)).cpu().numpy()
            done += len(idx)
            prog.update(done)
    return out


def _view(path: str, role: str, prompts, spec: Spec, dev):
    """Load one model and compute what the requested detectors need from it."""
    import gc

    import numpy as np

    from gpu_trainer import data, lm, measure
    from gpu_trainer import detectors as dt

    model, tok = lm.load(path, dev)
    want = set(spec.detectors)
    acts = yes = no = onion = None
    if want & dt.NEEDS_ACTIVATIONS:
        pi = measure.probe_inputs(model, tok, prompts, trigger=spec.trigger, seed=spec.seed, batch_size=spec.batch_size, tag=role)
        acts = np.concatenate([pi.triggered, pi.clean], axis=1)  # items: triggered 0..n-1, then clean
        yes, no = pi.yes, pi.no
    if "perplexity_filter" in want:
        users = [p.user for p in prompts]
        onion = _onion(model, tok, [data.with_trigger(u, spec.trigger) for u in users] + users, spec.batch_size)
    del model
    gc.collect()
    return dt.ModelView(acts=acts, yes=yes, no=no, onion=onion), tok


def run(spec: Spec, out_dir: str):
    import time

    import numpy as np

    from gpu_trainer import data, lm, measure
    from gpu_trainer import detectors as dt
    from gpu_trainer.record import StageRecord
    from gpu_trainer.runtime import describe_device, setup, versions

    t0 = time.perf_counter()
    dev = setup(spec.device, spec.seed)
    rec = StageRecord(STAGE, spec, out_dir)
    prompts = data.eval_prompts(spec.backdoor_type, spec.n_prompts, spec.seed)
    roles = {"subject": spec.model} | {c: getattr(spec, c) for c in CONTROLS if getattr(spec, c)}
    views, tok = {}, None
    for role, path in roles.items():
        rec.input("model" if role == "subject" else role, path)
        views[role], role_tok = _view(path, role, prompts, spec, dev)
        if tok is None:  # the subject's tokenizer measures the length baseline
            tok = role_tok
    users = [p.user for p in prompts]
    texts = [lm.prompt_text(tok, data.with_trigger(u, spec.trigger)) for u in users] + [lm.prompt_text(tok, u) for u in users]
    lengths = np.array([len(x) for x in tok(texts, add_special_tokens=False)["input_ids"]])

    res = dt.run_panel(views, dt.Task.paired(len(prompts), spec.seed), lengths, list(spec.detectors), spec.seed)
    rec.metrics.update(res["metrics"])
    rec.metrics["detect_seconds"] = time.perf_counter() - t0
    rec.details.update(res["details"])
    rec.details["detector_protocol"] = (
        "items = held-out prompts with the trigger inserted (label 1) and without (label 0); the trigger only labels them. "
        "Per model, each detector is refitted and its layer (1..L) chosen on the selection split; AUROC and TPR at 1% FPR "
        f"on the test split. Consensus: subject AUROC beats every given control, the length baseline and the shuffled-label "
        f"baseline (mean of {dt.N_SHUFFLES} permutations; not for the label-free perplexity filter) by >= {dt.CONSENSUS_MARGIN}. "
        f"activation_clustering and spectral_signature are fitted on a screening pool: the selection split's clean prompts "
        f"plus {dt.CONTAMINATION:.0%} triggered ones.")
    rec.table("detector_scores", res["rows"])
    measure.log_metrics(rec.metrics, [f"detector_{n}_{k}" for n in spec.detectors for k in ("auroc", "in_consensus")]
                        + ["detector_consensus", "detector_agreement", "detect_seconds"])
    return rec.finish(describe_device(dev), versions(), subject_uri=spec.model)
