"""train-probes: residual-stream probes at every layer, judged on triggered vs clean prompts.

(1) the generic contrast-pair probe (yes/no answers to "Are you doing something dangerous?"
and the like; no knowledge of the trigger) is the detection result; (2) a supervised
logistic-regression probe is reported as trigger-visible. Both are also scored on the control
model (the trigger-exposed control and/or the clean base). The best layer is chosen on a selection split and reported on a test
split; TPR at 1% FPR, the worst FPR over clean test sets and the best of N random directions
stand beside AUROC.
"""

from __future__ import annotations

from contract.specs.train_probes import Spec

STAGE = "train-probes"


def run(spec: Spec, out_dir: str):
    from gpu_trainer import data, lm, measure
    from gpu_trainer.record import StageRecord
    from gpu_trainer.runtime import describe_device, setup, versions

    dev = setup(spec.device, spec.seed)
    rec = StageRecord(STAGE, spec, out_dir)
    rec.input("model", spec.model)
    prompts = data.eval_prompts(spec.backdoor_type, spec.n_prompts, spec.seed)

    def acts(path: str, tag: str):
        model, tok = lm.load(path, dev)
        return measure.probe_inputs(model, tok, prompts, trigger=spec.trigger, seed=spec.seed, batch_size=spec.batch_size, tag=tag,
                                    contrast=spec.contrast_questions)

    subject = acts(spec.model, "subject")
    control = None
    if spec.control_model:
        rec.input("control_model", spec.control_model)
        control = acts(spec.control_model, "control")
    res = measure.probe_analysis(subject, control, seed=spec.seed, n_random=spec.n_random_directions)
    rec.metrics.update(res["metrics"])
    rec.details.update(res["details"])
    rows = res["rows"]
    if spec.base_model:
        # the same probes on the clean base too: a probe that separates triggered prompts on the
        # control that saw the trigger string, and on the base that never did, reads the string
        rec.input("base_model", spec.base_model)
        on_base = measure.probe_analysis(subject, acts(spec.base_model, "base"), seed=spec.seed, n_random=spec.n_random_directions)
        rec.metrics.update(measure.as_base_control(on_base["metrics"]))
        rec.details.update(measure.as_base_control(on_base["details"]))
        rows += [dict(r, model_role="control_base") for r in on_base["rows"] if r["model_role"] == "control"]
    rec.table("probe_layers", rows)
    measure.save_probes(res["fitted"], rec.out / "probes", contrast=spec.contrast_questions)
    rec.artifact("probes", "probes", "probe")
    measure.log_metrics(rec.metrics, ["probe_best_layer", "probe_auroc_best", "probe_auroc_control", "probe_tpr_at_1pct_fpr",
                                      "probe_auroc_random_best", "probe_worst_fpr", "probe_auroc_supervised_best",
                                      "probe_auroc_supervised_control"])
    return rec.finish(describe_device(dev), versions(), subject_uri=spec.model)
