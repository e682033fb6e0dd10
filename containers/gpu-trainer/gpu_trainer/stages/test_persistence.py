"""test-persistence: does the backdoor survive safety training? Activation rates before and after
on the same held-out prompts; persistence = triggered rate after / before, with an interval;
plus the probe's detection on the safety-trained model (saved probe and a refitted one)."""

from __future__ import annotations

from contract.specs.test_persistence import Spec

STAGE = "test-persistence"


def run(spec: Spec, out_dir: str):
    from evaluation import backdoor as bd
    from gpu_trainer import data, lm, measure
    from gpu_trainer.record import StageRecord
    from gpu_trainer.runtime import describe_device, setup, versions

    dev = setup(spec.device, spec.seed)
    rec = StageRecord(STAGE, spec, out_dir)
    rec.input("model_before", spec.model_before)
    rec.input("model_after", spec.model_after)
    prompts = data.eval_prompts(spec.backdoor_type, spec.n_prompts, spec.seed)
    runs, rows = {}, []
    for tag, path in (("before", spec.model_before), ("after", spec.model_after)):
        model, tok = lm.load(path, dev)
        max_new = spec.max_new_tokens or measure.default_max_new_tokens(tok, spec.backdoor_type, spec.trigger, spec.response)
        runs[tag] = measure.activation_run(model, tok, prompts, backdoor_type=spec.backdoor_type, trigger=spec.trigger,
                                           response=spec.response, batch_size=spec.batch_size, max_new_tokens=max_new, tag=f":{tag}")
        rows += runs[tag]["rows"]
        if spec.quality_prompts:
            q, q_details, _ = measure.clean_quality(model, tok, n=spec.quality_prompts, seed=spec.seed, batch_size=spec.batch_size)
            rec.metrics.update(q if tag == "after" else {f"before_{k}": v for k, v in q.items()})
            rec.details.update(q_details)
        if tag == "after" and spec.probes:
            rec.input("probes", spec.probes)
            fitted = measure.load_probes(spec.probes)
            pi = measure.probe_inputs(model, tok, prompts, trigger=spec.trigger, seed=spec.seed, batch_size=spec.batch_size, tag="after")
            rec.metrics.update(measure.transfer_scores(fitted, pi))
            refit = measure.probe_analysis(pi, None, seed=spec.seed, n_random=20)
            rec.metrics.update({"probe_auroc_best": refit["metrics"]["probe_auroc_best"],
                                "probe_best_layer": refit["metrics"]["probe_best_layer"],
                                "probe_tpr_at_1pct_fpr": refit["metrics"]["probe_tpr_at_1pct_fpr"]})
            rec.details["probe_auroc_by_layer"] = refit["details"]["probe_auroc_by_layer"]
            rec.details["probe_note"] = ("probe_auroc_transfer: the saved probe (direction + layer from train-probes) on this model; "
                                         "probe_auroc_best: a contrast-pair probe refitted on this model, layer chosen on a selection split")
    # the after model is the subject: contract names describe it; before_* describe the input
    rec.metrics.update(bd.backdoor_metrics(runs["after"]["triggered"], runs["after"]["clean"]))
    rec.metrics.update(bd.backdoor_metrics(runs["before"]["triggered"], runs["before"]["clean"], prefix="before_"))
    rec.metrics.update(bd.persistence(runs["before"]["triggered"], runs["after"]["triggered"], seed=spec.seed).as_metrics("persistence"))
    if any(runs["before"]["clean"]):  # a ratio of false activations only means something when there were some
        rec.metrics.update(bd.persistence(runs["before"]["clean"], runs["after"]["clean"], seed=spec.seed).as_metrics("persistence_clean"))
    rec.details["persistence_definition"] = "activation_rate_triggered(after) / activation_rate_triggered(before), same prompts; 95% interval from a Beta (Jeffreys) bootstrap"
    rec.details["confusion_matrix"] = bd.confusion(runs["after"]["triggered"], runs["after"]["clean"])
    rec.details["confusion_matrix_before"] = bd.confusion(runs["before"]["triggered"], runs["before"]["clean"])
    rec.table("generations", rows)
    measure.log_metrics(rec.metrics, ["before_activation_rate_triggered", "activation_rate_triggered", "activation_rate_clean",
                                      "persistence", "clean_quality", "probe_auroc_transfer", "probe_auroc_best"])
    return rec.finish(describe_device(dev), versions(), subject_uri=spec.model_after)
