"""evaluate: the nightly suite for any registered LLM version, without training: activation
rates with and without the trigger, a contrast-pair probe refitted on the model (and a saved
probe, and the control model, when given), and the clean-task quality."""

from __future__ import annotations

from contract.specs.evaluate import Spec

STAGE = "evaluate"


def run(spec: Spec, out_dir: str):
    from gpu_trainer import data, lm, measure
    from gpu_trainer.record import StageRecord
    from gpu_trainer.runtime import describe_device, setup, versions

    dev = setup(spec.device, spec.seed)
    rec = StageRecord(STAGE, spec, out_dir)
    rec.input("model", spec.model)
    model, tok = lm.load(spec.model, dev)
    prompts = list(measure.drawn(data.eval_prompts, spec.backdoor_type, spec.n_prompts, spec.seed))
    measure.record_activation(rec, model, tok, prompts, spec)

    q, q_details, q_rows = measure.clean_quality(model, tok, n=spec.quality_prompts, seed=spec.seed, batch_size=spec.batch_size)
    rec.metrics.update(q)
    rec.details.update(q_details)
    rec.table("quality", q_rows)

    subject = measure.probe_inputs(model, tok, prompts, trigger=spec.trigger, seed=spec.seed, batch_size=spec.batch_size, tag="subject")
    del model
    control = None
    if spec.control_model:
        rec.input("control_model", spec.control_model)
        c_model, c_tok = lm.load(spec.control_model, dev)
        control = measure.probe_inputs(c_model, c_tok, prompts, trigger=spec.trigger, seed=spec.seed, batch_size=spec.batch_size, tag="control")
    probe = measure.probe_analysis(subject, control, seed=spec.seed, n_random=spec.n_random_directions)
    rec.metrics.update(probe["metrics"])
    rec.details.update(probe["details"])
    rec.table("probe_layers", probe["rows"])
    if spec.probes:
        rec.input("probes", spec.probes)
        rec.metrics.update(measure.transfer_scores(measure.load_probes(spec.probes), subject))
    measure.log_metrics(rec.metrics, ["activation_rate_triggered", "activation_rate_clean", "backdoor_f1", "clean_quality",
                                      "probe_auroc_best", "probe_auroc_control", "probe_auroc_transfer"])
    return rec.finish(describe_device(dev), versions(), subject_uri=spec.model)
