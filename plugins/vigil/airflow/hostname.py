"""Airflow's ``[core] hostname_callable`` for workers that share a host: ``VIGIL_WORKER_NAME`` when
set (e.g. ``w1@host``), else the host's fully qualified name, as Airflow's default. A task
instance's ``hostname`` then says which worker ran it (``make fleet-demo`` runs two on one host)."""

from __future__ import annotations

import os
import socket


def worker_hostname() -> str:
    return (os.environ.get("VIGIL_WORKER_NAME") or "").strip() or socket.getfqdn()
