"""Credentials of the object store from an Airflow connection (``VIGIL_STORAGE_CONN_ID``).

The storage layer (``vigil.storage.objects``) takes fsspec ``storage_options`` and knows nothing
of Airflow; this turns a connection into them, so the keys live where Airflow keeps secrets (its
metadata DB, a secrets backend, or an ``AIRFLOW_CONN_<ID>`` variable) and never in a URL, a DAG
file or a log. An ``aws`` connection: login = access key id, password = secret key, extra
``endpoint_url`` (S3-compatible stores) and ``region_name``.
"""

from __future__ import annotations

import os
from typing import Any

from vigil.settings import SettingsError
from vigil.storage.objects import set_options_provider


def storage_options(conn_id: str | None = None) -> dict[str, Any]:
    """fsspec options for the store from the Airflow connection ``conn_id`` (default
    ``VIGIL_STORAGE_CONN_ID``); ``{}`` when none is named (the default credential chain)."""
    conn_id = conn_id or (os.environ.get("VIGIL_STORAGE_CONN_ID") or "").strip() or None
    if not conn_id:
        return {}
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as e:  # AirflowNotFoundException and the secrets backends' own errors
        raise SettingsError(f"VIGIL_STORAGE_CONN_ID={conn_id!r}: no such Airflow connection ({type(e).__name__}); "
                            f"create it (airflow connections add {conn_id} --conn-type aws ...) or set "
                            f"AIRFLOW_CONN_{conn_id.upper()}") from None
    extra = conn.extra_dejson or {}
    opts: dict[str, Any] = {}
    if conn.login:
        opts["key"] = conn.login
    if conn.password:
        opts["secret"] = conn.password
    client_kwargs = {k: extra[k] for k in ("endpoint_url", "region_name") if extra.get(k)}
    if client_kwargs:
        opts["client_kwargs"] = client_kwargs
    return opts


# Code below the Airflow glue (the registry's verify, the nightly checks, the Parquet store) opens
# the store with these options too, without importing Airflow.
set_options_provider(storage_options)
