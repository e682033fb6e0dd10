"""StoreStageOperator: the local runner's operator, reading and writing through the object store.

On the embedded default (``VIGIL_STORAGE_URL`` unset or ``file://``) it is exactly
:class:`~vigil.airflow.operators.local_stage.LocalStageOperator`. When the spec task handed on
store URLs (``s3://...``), it runs the stage on this worker through
:func:`vigil.lifecycle.stage_io.run_through_store`: inputs fetched into this worker's scratch by
sha256 and checked, the stage run there, its outputs uploaded with the manifest last. Whether to
do so is decided on the worker, from the command it was given, not when the DAG was parsed.
"""

from __future__ import annotations

from typing import Any

from vigil.airflow.operators.local_stage import LocalStageOperator


class StoreStageOperator(LocalStageOperator):
    def execute(self, context: Any) -> None:
        from vigil.airflow import storage_conn  # noqa: F401  (the store's credentials: VIGIL_STORAGE_CONN_ID)
        from vigil.lifecycle.stage_io import remote_store, run_through_store
        from vigil.settings import get_settings
        from vigil.storage.objects import is_store_url

        argv = [str(a) for a in self.command]
        store = remote_store()
        if store is None or not any(is_store_url(a, store) for a in argv):
            return super().execute(context)

        def run(local_argv: list[str]) -> None:
            self.command = local_argv
            try:
                LocalStageOperator.execute(self, context)
            finally:
                self.command = argv

        run_through_store(store, argv, get_settings().scratch_dir, run)
        return None
