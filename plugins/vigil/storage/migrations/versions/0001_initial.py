"""Initial warehouse: registry, runs, evaluations, model groups and their audit trail.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE runs (
    id            BIGSERIAL PRIMARY KEY,
    dag_id        TEXT NOT NULL CHECK (length(dag_id) BETWEEN 1 AND 250),
    run_id        TEXT NOT NULL CHECK (length(run_id) BETWEEN 1 AND 250),
    logical_date  TIMESTAMPTZ,
    run_type      TEXT,
    state         TEXT NOT NULL DEFAULT 'running',
    conf          JSONB NOT NULL DEFAULT '{}'::jsonb,
    started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (dag_id, run_id)
);

CREATE TABLE models (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    family       TEXT NOT NULL CHECK (family IN ('llm', 'sklearn', 'external')),
    description  TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE model_versions (
    id               BIGSERIAL PRIMARY KEY,
    model_id         BIGINT NOT NULL REFERENCES models(id) ON DELETE RESTRICT,
    version          INTEGER NOT NULL CHECK (version >= 1),
    artifact_uri     TEXT NOT NULL CHECK (length(artifact_uri) > 0),
    sha256           TEXT CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    files            JSONB NOT NULL DEFAULT '{}'::jsonb,
    params           JSONB NOT NULL DEFAULT '{}'::jsonb,
    metrics          JSONB NOT NULL DEFAULT '{}'::jsonb,
    parent_id        BIGINT REFERENCES model_versions(id) ON DELETE RESTRICT,
    status           TEXT NOT NULL DEFAULT 'registered'
                     CHECK (status IN ('registered', 'validated', 'evaluated', 'failed', 'archived')),
    source           TEXT NOT NULL CHECK (source IN ('stage', 'import')),
    stage            TEXT,
    producer_key     TEXT UNIQUE,
    run_id           BIGINT REFERENCES runs(id) ON DELETE SET NULL,
    manifest         JSONB,
    source_document  TEXT,
    mapping_report   JSONB,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (model_id, version),
    CHECK (parent_id IS NULL OR parent_id <> id)
);
CREATE INDEX ix_model_versions_artifact_uri ON model_versions (artifact_uri);
CREATE INDEX ix_model_versions_created_at ON model_versions (created_at);

CREATE TABLE datasets (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    version       INTEGER NOT NULL CHECK (version >= 1),
    uri           TEXT NOT NULL,
    sha256        TEXT CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    kind          TEXT NOT NULL DEFAULT 'table',
    n_rows        BIGINT,
    schema        JSONB NOT NULL DEFAULT '{}'::jsonb,
    validation    JSONB NOT NULL DEFAULT '{}'::jsonb,
    producer_key  TEXT UNIQUE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (name, version)
);

CREATE TABLE evaluations (
    id                BIGSERIAL PRIMARY KEY,
    model_version_id  BIGINT NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
    suite             TEXT NOT NULL CHECK (length(suite) BETWEEN 1 AND 100),
    logical_date      DATE NOT NULL,
    run_id            BIGINT REFERENCES runs(id) ON DELETE SET NULL,
    dataset_id        BIGINT REFERENCES datasets(id) ON DELETE SET NULL,
    metrics           JSONB NOT NULL DEFAULT '{}'::jsonb,
    details           JSONB NOT NULL DEFAULT '{}'::jsonb,
    n_samples         INTEGER,
    status            TEXT NOT NULL DEFAULT 'succeeded' CHECK (status IN ('succeeded', 'failed')),
    producer_key      TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (model_version_id, suite, logical_date)
);
CREATE INDEX ix_evaluations_date ON evaluations (logical_date);

CREATE TABLE model_groups (
    id              BIGSERIAL PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    slug            TEXT NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9_]{1,40}$'),
    primary_metric  TEXT NOT NULL CHECK (length(primary_metric) BETWEEN 1 AND 100),
    direction       TEXT NOT NULL CHECK (direction IN ('min', 'max')),
    guardrails      JSONB NOT NULL DEFAULT '{}'::jsonb,
    auto_promote    BOOLEAN NOT NULL DEFAULT false,
    shadow          BOOLEAN NOT NULL DEFAULT false,
    description     TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at      TIMESTAMPTZ
);

CREATE TABLE group_members (
    id                BIGSERIAL PRIMARY KEY,
    group_id          BIGINT NOT NULL REFERENCES model_groups(id) ON DELETE CASCADE,
    model_version_id  BIGINT NOT NULL REFERENCES model_versions(id) ON DELETE RESTRICT,
    role              TEXT NOT NULL CHECK (role IN ('champion', 'challenger', 'retired')),
    traffic_weight    DOUBLE PRECISION NOT NULL DEFAULT 0 CHECK (traffic_weight >= 0 AND traffic_weight <= 1),
    added_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (group_id, model_version_id),
    CHECK (role <> 'retired' OR traffic_weight = 0)
);
-- The database, not the application, guarantees one champion per group.
CREATE UNIQUE INDEX uq_group_one_champion ON group_members (group_id) WHERE role = 'champion';

CREATE TABLE group_events (
    id                BIGSERIAL PRIMARY KEY,
    group_id          BIGINT NOT NULL REFERENCES model_groups(id) ON DELETE CASCADE,
    event_type        TEXT NOT NULL,
    actor             TEXT NOT NULL,
    reason            TEXT NOT NULL DEFAULT '',
    from_version_id   BIGINT REFERENCES model_versions(id) ON DELETE SET NULL,
    to_version_id     BIGINT REFERENCES model_versions(id) ON DELETE SET NULL,
    metrics_snapshot  JSONB NOT NULL DEFAULT '{}'::jsonb,
    details           JSONB NOT NULL DEFAULT '{}'::jsonb,
    at                TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX ix_group_events_group ON group_events (group_id, at);

CREATE TABLE comparisons (
    id                     BIGSERIAL PRIMARY KEY,
    group_id               BIGINT NOT NULL REFERENCES model_groups(id) ON DELETE CASCADE,
    logical_date           DATE NOT NULL,
    champion_version_id    BIGINT NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
    challenger_version_id  BIGINT NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
    primary_metric         TEXT NOT NULL,
    metrics                JSONB NOT NULL DEFAULT '{}'::jsonb,
    decision               TEXT NOT NULL CHECK (decision IN ('promote', 'keep', 'inconclusive')),
    reasons                JSONB NOT NULL DEFAULT '[]'::jsonb,
    run_id                 BIGINT REFERENCES runs(id) ON DELETE SET NULL,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (group_id, logical_date, challenger_version_id)
);
"""

DOWNGRADE = """
DROP TABLE IF EXISTS comparisons, group_events, group_members, model_groups, evaluations,
    datasets, model_versions, models, runs CASCADE;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
