"""Model groups: decision policy (alpha, minimum effect) and names reusable after deletion.

A deleted group keeps its row (its audit trail and comparisons stay readable) but must not
block a new group with the same name or slug, so uniqueness holds over live groups only.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE model_groups ADD COLUMN policy JSONB NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE model_groups DROP CONSTRAINT model_groups_name_key;
ALTER TABLE model_groups DROP CONSTRAINT model_groups_slug_key;
CREATE UNIQUE INDEX uq_model_groups_live_name ON model_groups (name) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX uq_model_groups_live_slug ON model_groups (slug) WHERE deleted_at IS NULL;
"""

DOWNGRADE = r"""
DROP INDEX IF EXISTS uq_model_groups_live_name;
DROP INDEX IF EXISTS uq_model_groups_live_slug;
ALTER TABLE model_groups ADD CONSTRAINT model_groups_name_key UNIQUE (name);
ALTER TABLE model_groups ADD CONSTRAINT model_groups_slug_key UNIQUE (slug);
ALTER TABLE model_groups DROP COLUMN policy;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
