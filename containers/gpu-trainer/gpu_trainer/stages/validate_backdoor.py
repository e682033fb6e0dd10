"""validate-backdoor: greedy generations on held-out prompts with and without the trigger;
activation rates (Wilson 95%), confusion matrix, precision/recall/F1, stealthiness."""

from __future__ import annotations

from contract.specs.validate_backdoor import Spec

STAGE = "validate-backdoor"


def run(spec: Spec, out_dir: str):
    from gpu_trainer import data, lm, measure
    from gpu_trainer.record import StageRecord
    from gpu_trainer.runtime import describe_device, setup, versions

    dev = setup(spec.device, spec.seed)
    rec = StageRecord(STAGE, spec, out_dir)
    rec.input("model", spec.model)
    model, tok = lm.load(spec.model, dev)
    prompts = data.eval_prompts(spec.backdoor_type, spec.n_prompts, spec.seed)
    measure.record_activation(rec, model, tok, prompts, spec)
    if spec.quality_prompts:
        q_metrics, q_details, _ = measure.clean_quality(model, tok, n=spec.quality_prompts, seed=spec.seed, batch_size=spec.batch_size)
        rec.metrics.update(q_metrics)
        rec.details.update(q_details)
    measure.log_metrics(rec.metrics, ["activation_rate_triggered", "activation_rate_clean", "backdoor_f1", "clean_quality"])
    return rec.finish(describe_device(dev), versions(), subject_uri=spec.model)
