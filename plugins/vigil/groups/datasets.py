"""Dataset registration: a validated Parquet/CSV table recorded in ``datasets`` (the tables
scikit-learn groups train, evaluate and score on)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vigil.groups.records import GroupError
from vigil.registry.versions import validate_name


def register_dataset(engine: Engine, name: str, path: str | Path, *, target: str | None,
                     features: list[str] | None = None, id_column: str | None = "row_id",
                     task: str = "classifier", producer_key: str | None = None) -> dict[str, Any]:
    """Validate a Parquet/CSV table and register it in ``datasets`` (name, version, uri, sha256,
    schema, validation report). Unusable data raises :class:`GroupError` listing every problem
    and writes nothing. Registering the same bytes again returns the existing version."""
    from contract.manifest import sha256_path
    from evaluation.tabular import read_table, validate_table

    validate_name(name, "dataset name", limit=200, what="the dataset", error=GroupError)
    p = Path(path).expanduser().resolve()
    try:
        df = read_table(p)
    except (OSError, ValueError) as e:
        raise GroupError(f"dataset {str(path)!r}: {e}") from None
    report = validate_table(df, target=target, features=features, id_column=id_column, task=task)
    if not report.ok:
        raise GroupError(f"dataset {name!r} is not usable:\n  - " + "\n  - ".join(report.problems))
    sha = sha256_path(p)
    with engine.begin() as c:
        c.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": f"dataset:{name}"})
        row = c.execute(sa.text("SELECT id, version FROM datasets WHERE name = :n AND sha256 = :s"),
                        {"n": name, "s": sha}).one_or_none()
        if row is not None:
            return {"id": row.id, "name": name, "version": row.version, "sha256": sha, "uri": str(p), "new": False,
                    "validation": report.to_dict()}
        version = c.execute(sa.text("SELECT COALESCE(max(version), 0) + 1 FROM datasets WHERE name = :n"),
                            {"n": name}).scalar_one()
        did = c.execute(
            sa.text(
                """INSERT INTO datasets (name, version, uri, sha256, kind, n_rows, schema, validation, producer_key)
                   VALUES (:n, :v, :u, :s, 'table', :rows, CAST(:schema AS jsonb), CAST(:val AS jsonb), :pk) RETURNING id"""
            ),
            {"n": name, "v": version, "u": str(p), "s": sha, "rows": report.n_rows,
             "schema": json.dumps(report.schema), "val": json.dumps(report.to_dict(), default=str), "pk": producer_key},
        ).scalar_one()
    return {"id": did, "name": name, "version": version, "sha256": sha, "uri": str(p), "new": True,
            "validation": report.to_dict()}

