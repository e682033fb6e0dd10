"""publish_reports: rebuild the report site and its PDFs from the warehouse.

Scheduled on the warehouse asset (every stage record and nightly run updates it) and runnable
by hand. The site is built into a new directory and swapped in atomically: a failed build
leaves the published site whole.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag

from vigil.airflow.dag_wiring import RUN_CALLBACKS, WAREHOUSE_ASSET
from vigil.airflow.tasks import task


@dag(
    dag_id="publish_reports",
    schedule=[WAREHOUSE_ASSET],
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    tags=["vigil", "report"],
    **RUN_CALLBACKS,
    doc_md=__doc__,
    params={"pdf": Param(True, type="boolean", title="Export PDFs", description="Render the PDF downloads too.")},
)
def publish_reports():
    @task
    def build_site(**context) -> dict:
        from site_builder.publish import build_site as build
        from vigil.storage.warehouse import ready_engine

        result = build(ready_engine(), pdf=bool(context["params"]["pdf"]))
        return {"index_html": str(result.index_html), "pages_written": result.pages_written,
                "pages_unchanged": result.pages_unchanged, "pdfs": len(result.pdfs), "seconds": result.seconds}

    build_site()


publish_reports()
