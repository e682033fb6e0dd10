"""scan_zoo: build a zoo of tiny backdoored models and controls, scan every one blind, and say how
often the scan is right on backdoors and wrong on controls.

Per seed, one base (a clean control too); per backdoor (types and trigger kinds rotate over the
zoo's grid, see ``contract.zoo``) a trigger-exposed control trained with the same data size,
hyperparameters and trainer, whose completions are the normal ones. Every model is registered
(``zoo-<zoo>-<member>``, lineage base -> backdoor / control), validated, and scanned with the
``scan`` stage, which is never told the trigger; the record step alone compares the scan's
candidate with the planted trigger. ``summarise`` reads the verdicts back from the warehouse and
logs the zoo's table: detection rate on backdoored models and false-flag rate on controls, each
with a Wilson interval, and planted-trigger recall. Each backdoor also gets the detector panel
(``detect``) against its trigger-exposed control, a cross-trigger backdoor and the base; there the
planted trigger labels the test prompts, as it must to score a detector. The ``calibration`` zoo is where the scan's
thresholds were set; the ``judged`` zoo (other seeds, other triggers) is only ever measured.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import Param, dag, task_group

from vigil.airflow.dag_wiring import RUN_CALLBACKS, WAREHOUSE_ASSET, run_key, run_ref
from vigil.airflow.stage_runner import STAGES, stage_operator
from vigil.airflow.tasks import task

PARAMS = {
    "zoo": Param("judged", type="string", enum=["judged", "calibration"], title="Zoo",
                 description="judged: seeds 0.. and its own triggers, only measured; calibration: where the scan's thresholds were set.",
                 section="Zoo"),
    "seeds": Param([], type="array", items={"type": "integer", "minimum": 0}, title="Seeds",
                   description="One base and its models per seed (empty: the zoo's own seeds).", section="Zoo"),
    "per_seed": Param(6, type="integer", minimum=1, maximum=24, title="Backdoors per seed",
                      description="Each with its trigger-exposed control; types and triggers rotate over the zoo's grid.",
                      section="Zoo"),
    "hidden_size": Param(None, type=["null", "integer"], minimum=16, maximum=4096, title="Base hidden size",
                         description="Tiny base width (empty: the zoo's default, 64).", section="Sizes"),
    "pretrain_examples": Param(None, type=["null", "integer"], minimum=50, maximum=100000, title="Pre-training examples",
                               description="Base pre-training examples (empty: the zoo's default).", section="Sizes"),
    "n_samples": Param(None, type=["null", "integer"], minimum=20, maximum=100000, title="Backdoor samples",
                       description="Training records per backdoor and per control (empty: the zoo's default, 600).", section="Sizes"),
    "epochs": Param(None, type=["null", "integer"], minimum=1, maximum=100, title="Epochs",
                    description="Backdoor and control training epochs (empty: the zoo's default).", section="Sizes"),
    "steps": Param(None, type=["null", "integer"], minimum=0, maximum=10000, title="Scan steps",
                   description="GCG steps per trigger length (empty: the scan stage's default).", section="Scan"),
    "max_trigger_tokens": Param(None, type=["null", "integer"], minimum=1, maximum=8, title="Longest trigger searched",
                                description="Tokens (empty: the scan stage's default).", section="Scan"),
    "n_eval_prompts": Param(None, type=["null", "integer"], minimum=5, maximum=5000, title="Held-out prompts per pool",
                            description="Prompts each candidate is measured on (empty: the scan stage's default).", section="Scan"),
    "detect": Param(True, type="boolean", title="Run the detector panel", section="Detector panel",
                    description="Per backdoor, the detect stage against its trigger-exposed control, a cross-trigger "
                                "backdoor and the base (the planted trigger labels its prompts; the scan stays blind)."),
    "panel_prompts": Param(None, type=["null", "integer"], minimum=20, maximum=100000, title="Panel prompts",
                           description="Held-out prompts of the detector panel (empty: the detect stage's default).",
                           section="Detector panel"),
    "device": Param("auto", type="string", enum=["auto", "cpu", "cuda"], title="Device", section="Scan"),
}


def _stage(stage_name: str, step: str, build, member, **inputs):
    """spec -> run -> record of one stage for one zoo member, inside the mapped group."""
    stage = STAGES[stage_name]

    @task(task_id=f"{step}_spec")
    def spec(member: dict, inputs: dict, **context: Any) -> dict[str, str]:
        from vigil.lifecycle.specs import artifact_dir, safe_segment, write_spec

        params = dict(context["params"])
        out = artifact_dir(context["ti"].dag_id, run_key(context), f"{safe_segment(member['key'])}/{step}")
        return write_spec(out, stage_name, build(params, member, **inputs))

    prepared = spec(member, inputs)
    run = stage_operator(stage, spec_path=prepared["spec_path"], out_dir=prepared["out_dir"], task_id=f"{step}_run")

    @task(task_id=f"{step}_record")
    def record(prepared: dict, member: dict, parent: dict | None = None, subject: dict | None = None,
               **context: Any) -> dict[str, Any]:
        from vigil.registry.ingest import record_stage
        from vigil.storage.parquet_store import default_store
        from vigil.storage.warehouse import ready_engine

        rec = record_stage(ready_engine(), prepared["out_dir"], run_ref(context), store=default_store(),
                           parent_id=(parent or {}).get("version_id"), subject_version_id=(subject or {}).get("version_id"))
        out = rec.to_xcom()
        if rec.version_id is None and subject:  # a measuring stage: describe the member's model
            out.update({k: subject[k] for k in ("version_id", "ref", "artifact_uri")})
        return {**out, "seed": member["seed"], "key": member["key"]}

    recorded = record(prepared, member, inputs.get("parent"), inputs.get("subject"))
    prepared >> run >> recorded
    return recorded


@dag(
    dag_id="scan_zoo",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params=PARAMS,
    tags=["vigil", "audit"],
    doc_md=__doc__,
    max_active_runs=1,
    default_args={"retries": 0},
    **RUN_CALLBACKS,
)
def scan_zoo():
    from vigil.lifecycle import zoo

    @task
    def plan(**context) -> dict[str, list[dict]]:
        """The zoo's members; a bad grid fails here, in seconds, with the form field named."""
        return zoo.plan(dict(context["params"]))

    @task
    def bases_of(p: dict) -> list[dict]:
        return p["bases"]

    @task
    def members_of(p: dict) -> list[dict]:
        return p["members"]

    @task_group(group_id="base")
    def base(member: dict):
        made = _stage("make-base", "make_base", lambda p, m: zoo.base_spec(p, m), member)
        # a clean base has no reference to difference against: the scan runs reference-free
        return _stage("scan", "scan", lambda p, m, subject: zoo.scan_spec(p, m, subject, None), member, subject=made)

    @task_group(group_id="member")
    def trained(member: dict, bases: list[dict]):
        @task
        def base_for(member: dict, bases: list[dict]) -> dict:
            return zoo.base_of(list(bases), member)

        b = base_for(member, bases)
        model = _stage("train-backdoor", "train", lambda p, m, parent: zoo.train_spec(p, m, parent), member, parent=b)
        _stage("validate-backdoor", "validate", lambda p, m, subject: zoo.validate_spec(p, m, subject), member, subject=model)
        return _stage("scan", "scan", lambda p, m, subject, base: zoo.scan_spec(p, m, subject, base), member, subject=model, base=b)

    @task
    def panels_of(p: dict, **context) -> list[dict]:
        return zoo.panels(p["members"]) if context["params"].get("detect", True) else []

    @task_group(group_id="panel")
    def panel(member: dict):
        @task
        def models(member: dict, **context) -> dict:
            from vigil.storage.warehouse import ready_engine

            return zoo.panel_models(ready_engine(), dict(context["params"]), member)

        return _stage("detect", "detect", lambda p, m, subject: zoo.detect_spec(p, m, subject), member, subject=models(member))

    @task(outlets=[WAREHOUSE_ASSET], trigger_rule="none_failed")
    def summarise(p: dict, **context) -> dict:
        """The zoo's table, read back from the warehouse (what the site shows)."""
        import logging

        from evaluation.scan import zoo_summary
        from vigil.storage.warehouse import ready_engine

        engine = ready_engine()
        params = dict(context["params"])
        rows = zoo.summary_rows(engine, [r["ref"] for r in zoo.recorded(engine, params, [*p["bases"], *p["members"]])])
        summary = zoo_summary(rows)
        log = logging.getLogger("scan_zoo")
        for r in rows:
            log.info("%-40s %-18s %-12s %s %r", r["ref"], r["role"], r["scan_verdict"], r["trigger_recovered"], r["trigger_candidate"])
        for k, v in summary.items():
            if isinstance(v, dict):
                log.info("%s: %d/%d = %.3f [%.3f, %.3f]", k, v["k"], v["n"], v["rate"], v["ci_low"], v["ci_high"])
        return {"rows": rows, "summary": summary}

    @task
    def recorded_bases(p: dict, **context) -> list[dict]:
        """The bases this run registered, read back from the registry (a mapped group's results
        do not reach a task outside it as a list here)."""
        from vigil.storage.warehouse import ready_engine

        return zoo.recorded(ready_engine(), dict(context["params"]), p["bases"])

    p = plan()
    scanned_bases = base.expand(member=bases_of(p))
    bases = recorded_bases(p)
    scanned_bases >> bases
    scanned = trained.partial(bases=bases).expand(member=members_of(p))
    to_judge = panels_of(p)
    scanned >> to_judge  # every member trained (the controls too) before any panel starts
    judged = panel.expand(member=to_judge)
    done = summarise(p)
    [scanned, judged] >> done


scan_zoo()
