"""import_model: bring a model trained elsewhere into the registry (the form of `vigil models import`).

PATH may be a JSON/YAML metadata file, a Hugging Face model card (.md), an MLflow `MLmodel` or
run folder, a W&B export, a causal-LM folder (`config.json` + weights) or a scikit-learn folder
(`.joblib`/`.pkl` + a metrics file). It must lie under `VIGIL_IMPORT_ROOTS` on the worker.

What other tools call `model_performance`, `scores`, `eval_results`, `hyperparameters`,
`training_args`... is mapped onto Vigil's record by one rules table; the run's XCom and the
version's `mapping_report` say what was mapped from where, what was ignored and what is missing.
Bad input (syntax errors, non-numeric metrics, fractions above 1, a name clash, a file too large,
a path outside the roots) fails the task with the reason, without retries, and writes nothing.
Importing the same content under the same name again returns the same version.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag

from vigil.airflow.dag_wiring import WAREHOUSE_ASSET, run_ref
from vigil.airflow.tasks import task


@dag(
    dag_id="import_model",
    schedule=None,
    start_date=datetime(2026, 11, 1),
    catchup=False,
    tags=["vigil", "import"],
    doc_md=__doc__,
    params={
        "path": Param(type="string", minLength=1, maxLength=4096, title="Path",
                      description="File or folder to import, on the worker, under VIGIL_IMPORT_ROOTS."),
        "name": Param(None, type=["null", "string"], minLength=1, maxLength=200, title="Name",
                      description="Registry name. Empty: the name in the metadata, else the file or folder name."),
        "family": Param("auto", type="string", enum=["auto", "llm", "sklearn", "external"], title="Family",
                        description="llm (causal-LM folder), sklearn (pickle folder), external (metadata only), "
                                    "or auto (detected from the path)."),
        "group": Param(None, type=["null", "string"], minLength=1, maxLength=100, title="Model group",
                       description="Join this model group as a challenger (weight 0). Empty: no group."),
        "trust_pickle": Param(False, type="boolean", title="Trust the pickle",
                              description="Load a scikit-learn pickle (unpickling runs code from the file). "
                                          "Off: registered from metadata and hashes only, not scorable."),
        "llm_mapper": Param(False, type="boolean", title="Ask the LLM mapper",
                            description="Send the keys no rule knows (names and value types only) to the "
                                        "endpoint of connection vigil_llm_mapper; its answer is validated."),
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Check and map only; write nothing."),
    },
)
def import_model():
    @task(retries=0, outlets=[WAREHOUSE_ASSET])
    def import_path(**context) -> dict:
        """Plan (every check), then copy into the artifact store and register one version."""
        from airflow.sdk.exceptions import AirflowFailException

        from vigil.importer import ImportRefused
        from vigil.importer import import_path as run_import
        from vigil.registry.versions import Registry
        from vigil.storage.warehouse import ready_engine

        p = context["params"]
        try:
            result = run_import(
                p["path"], Registry(ready_engine()), name=p.get("name") or None,
                family=None if p.get("family") in (None, "auto") else p["family"], group=p.get("group") or None,
                trust_pickle=bool(p.get("trust_pickle")), llm_mapper=bool(p.get("llm_mapper")),
                dry_run=bool(p.get("dry_run")), run=run_ref(context),
            )
        except ImportRefused as e:  # bad input: retrying cannot help
            raise AirflowFailException(f"import refused: {e}") from None
        rep = result.plan.report
        return {"status": result.status, "ref": result.ref, "version_id": result.version_id,
                "family": result.plan.family, "artifact_uri": result.artifact_uri, "sha256": result.plan.sha256,
                "mapped": [f"{m['target']} <- {m['source']}" for m in rep["mapped"]],
                "ignored": [f"{i['source']}: {i['reason']}" for i in rep["ignored"]],
                "missing": rep["missing"], "notes": rep["notes"], "scorable": rep["scorable"],
                "group_membership": result.group_membership}

    import_path()


import_model()
