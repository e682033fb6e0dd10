"""Indexes on the run_id foreign keys, for the site's per-run counts (and run deletion).

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE INDEX IF NOT EXISTS ix_evaluations_run ON evaluations (run_id);
CREATE INDEX IF NOT EXISTS ix_model_versions_run ON model_versions (run_id);
CREATE INDEX IF NOT EXISTS ix_comparisons_run ON comparisons (run_id);
CREATE INDEX IF NOT EXISTS ix_evaluations_succeeded ON evaluations (model_version_id, suite, logical_date)
    WHERE status = 'succeeded';
"""

DOWNGRADE = r"""
DROP INDEX IF EXISTS ix_evaluations_run;
DROP INDEX IF EXISTS ix_model_versions_run;
DROP INDEX IF EXISTS ix_comparisons_run;
DROP INDEX IF EXISTS ix_evaluations_succeeded;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
