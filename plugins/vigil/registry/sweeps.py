"""The ``sweeps`` / ``sweep_cells`` tables (migration 0004): a named grid, each cell's state and
the model versions it produced. Metrics never live here: they are the versions' evaluations.

Every write is an upsert keyed by the sweep's name and the cell's canonical key, so running the
same sweep again never adds a row for a cell it already has. States: ``pending`` (in the grid,
never started), ``running`` (a run of the sweep is working on it), ``succeeded`` (every version
the cell needs is registered), ``failed`` (``error`` says which step and why).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from contract import jsonsafe

CELL_COLUMNS = ("cell_key", "base_size", "backdoor_type", "trigger", "safety_method", "safety_strength", "seed")
VERSION_COLUMNS = ("base_version_id", "backdoored_version_id", "control_version_id", "safety_version_id")
# Which cells a built model belongs to: a base is shared by its size and seed, a backdoor (and its
# trigger-exposed control) by its size, seed, type and trigger.
BASE_KEY = ("base_size", "seed")
BACKDOOR_KEY = ("base_size", "seed", "backdoor_type", "trigger")


class SweepStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def upsert(self, name: str, grid: dict[str, Any], cells: list[dict[str, Any]]) -> int:
        """The sweep (its grid as last run) and a ``pending`` row for each cell it does not have yet;
        existing cells keep their state, versions and attempts. Returns the sweep's id."""
        with self.engine.begin() as c:
            sid = c.execute(sa.text(
                """INSERT INTO sweeps (name, grid) VALUES (:n, CAST(:g AS jsonb))
                   ON CONFLICT (name) DO UPDATE SET grid = EXCLUDED.grid, updated_at = now() RETURNING id"""),
                {"n": name, "g": jsonsafe.dumps(grid)}).scalar_one()
            for cell in cells:
                c.execute(sa.text(
                    """INSERT INTO sweep_cells (sweep_id, cell_key, base_size, backdoor_type, trigger, safety_method,
                                                safety_strength, seed, params)
                       VALUES (:sid, :cell_key, :base_size, :backdoor_type, :trigger, :safety_method, :safety_strength,
                               :seed, CAST(:params AS jsonb))
                       ON CONFLICT (sweep_id, cell_key) DO NOTHING"""),
                    {"sid": sid, **{k: cell[k] for k in CELL_COLUMNS}, "params": jsonsafe.dumps(cell["params"])})
        return sid

    def cells(self, name: str) -> list[dict[str, Any]]:
        """Every cell of the sweep with its state and versions (a version deleted since reads None)."""
        with self.engine.connect() as c:
            rows = c.execute(sa.text(
                """SELECT sc.* FROM sweep_cells sc JOIN sweeps s ON s.id = sc.sweep_id WHERE s.name = :n
                   ORDER BY sc.id"""), {"n": name})
            return [dict(r._mapping) for r in rows]

    def sweep(self, name: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            row = c.execute(sa.text("SELECT * FROM sweeps WHERE name = :n"), {"n": name}).one_or_none()
        return dict(row._mapping) if row else None

    def names(self) -> list[str]:
        with self.engine.connect() as c:
            return list(c.execute(sa.text("SELECT name FROM sweeps ORDER BY name")).scalars())

    def start(self, name: str, keys: list[str], run_pk: int | None, reuse: dict[str, dict[str, int | None]]) -> None:
        """Mark ``keys`` running for this run (one more attempt, error cleared) with the versions
        they reuse (``reuse``: cell key -> version columns, e.g. a base another cell built)."""
        with self.engine.begin() as c:
            for key in keys:
                cols = {k: v for k, v in reuse.get(key, {}).items() if k in (*VERSION_COLUMNS, "n_params")}
                sets = "".join(f", {k} = :{k}" for k in cols)
                c.execute(sa.text(
                    f"""UPDATE sweep_cells SET state = 'running', attempts = attempts + 1, error = NULL, run_id = :run,
                          started_at = now(), finished_at = NULL{sets}
                        WHERE sweep_id = (SELECT id FROM sweeps WHERE name = :n) AND cell_key = :k"""),
                    {"n": name, "k": key, "run": run_pk, **cols})

    def set_versions(self, name: str, match: dict[str, Any], values: dict[str, Any]) -> int:
        """Set version columns (and ``n_params``) on the running cells that share ``match`` (e.g. a
        base's size and seed). Returns how many cells it reached."""
        allowed = (*VERSION_COLUMNS, "n_params")
        cols = {k: v for k, v in values.items() if k in allowed}
        where = " AND ".join(f"{k} = :m_{k}" for k in match if k in CELL_COLUMNS)
        with self.engine.begin() as c:
            return c.execute(sa.text(
                f"""UPDATE sweep_cells SET {", ".join(f"{k} = :{k}" for k in cols)}
                    WHERE sweep_id = (SELECT id FROM sweeps WHERE name = :n) AND state = 'running' AND {where}"""),
                {"n": name, **cols, **{f"m_{k}": v for k, v in match.items()}}).rowcount

    def succeed(self, name: str, key: str, safety_version_id: int) -> None:
        with self.engine.begin() as c:
            c.execute(sa.text(
                """UPDATE sweep_cells SET state = 'succeeded', safety_version_id = :v, error = NULL, finished_at = now()
                   WHERE sweep_id = (SELECT id FROM sweeps WHERE name = :n) AND cell_key = :k"""),
                {"n": name, "k": key, "v": safety_version_id})

    def fail(self, name: str, key: str, error: str) -> None:
        with self.engine.begin() as c:
            c.execute(sa.text(
                """UPDATE sweep_cells SET state = 'failed', error = :e, finished_at = now()
                   WHERE sweep_id = (SELECT id FROM sweeps WHERE name = :n) AND cell_key = :k"""),
                {"n": name, "k": key, "e": error[:2000]})

    def note_error(self, name: str, match: dict[str, Any], error: str) -> None:
        """Keep the first error of the running cells that share ``match`` (a failed stage's message,
        before the run's last task marks them failed)."""
        where = " AND ".join(f"{k} = :m_{k}" for k in match if k in CELL_COLUMNS)
        with self.engine.begin() as c:
            c.execute(sa.text(
                f"""UPDATE sweep_cells SET error = COALESCE(error, :e)
                    WHERE sweep_id = (SELECT id FROM sweeps WHERE name = :n) AND state = 'running' AND {where}"""),
                {"n": name, "e": error[:2000], **{f"m_{k}": v for k, v in match.items()}})

    def existing_versions(self, ids: set[int]) -> set[int]:
        """Which of ``ids`` are registered versions (a version may have been deleted since)."""
        if not ids:
            return set()
        with self.engine.connect() as c:
            rows = c.execute(sa.text("SELECT id FROM model_versions WHERE id = ANY(:ids)"), {"ids": sorted(ids)})
            return set(rows.scalars())
