"""Indexes for the site's warehouse read (site_builder.snapshot): the run_id foreign keys (per-run
counts, and deleting a run) and each version's newest succeeded evaluation per suite.

The EXPLAIN (ANALYZE) excerpts beside each index are from bench/warehouse_read.py's warehouse:
1,000 versions, 102,943 evaluations (100 nights), 20,200 comparisons, 753 runs; PostgreSQL 15 on
2 CPU cores shared with other jobs, so the times are noisy and only their ratios matter.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- How many evaluations each run recorded (RUNS_SQL: one grouped count, joined to the runs).
-- The count per run before this migration, a scan of every evaluation for each run:
--   SubPlan 2 -> Seq Scan on evaluations e (actual time=83.753..166.063 rows=137 loops=753)
--                Filter: (run_id = r.id)  Rows Removed by Filter: 102806
--   Execution Time: 154135.043 ms
-- The grouped count without the index:
--   HashAggregate -> Seq Scan on evaluations (actual time=0.045..502.755 rows=102943 loops=1)
-- With it:
--   GroupAggregate -> Index Only Scan using ix_evaluations_run on evaluations
--                     (actual time=4.235..31.211 rows=102943 loops=1)  Heap Fetches: 0
--   RUNS_SQL Execution Time: 75.762 ms (664.748 ms without the three run_id indexes)
CREATE INDEX IF NOT EXISTS ix_evaluations_run ON evaluations (run_id);

-- The same count of versions per run:
--   without: HashAggregate -> Seq Scan on model_versions (actual time=0.032..1.031 rows=1000 loops=1)
--   with:    GroupAggregate -> Index Only Scan using ix_model_versions_run on model_versions
--            (actual time=0.040..0.208 rows=1000 loops=1)  Heap Fetches: 0
CREATE INDEX IF NOT EXISTS ix_model_versions_run ON model_versions (run_id);

-- And of comparisons per run:
--   without: HashAggregate -> Seq Scan on comparisons (actual time=0.046..87.283 rows=20200 loops=1)
--   with:    GroupAggregate -> Index Only Scan using ix_comparisons_run on comparisons
--            (actual time=0.063..3.077 rows=20200 loops=1)  Heap Fetches: 0
CREATE INDEX IF NOT EXISTS ix_comparisons_run ON comparisons (run_id);

-- Each version's newest succeeded nightly evaluation per suite (EVALUATIONS_SQL reads the details
-- of that one only). The unique (model_version_id, suite, logical_date) index cannot answer it
-- alone: status is not in it. Computed in each of the 3 parallel workers:
--   without: HashAggregate -> Seq Scan on evaluations (actual time=0.044..515.810 rows=101896 loops=3)
--            Filter: ((suite = ANY (...)) AND (status = 'succeeded'::text))
--            EVALUATIONS_SQL Execution Time: 1923.249 ms
--   with:    GroupAggregate -> Index Only Scan using ix_evaluations_succeeded on evaluations
--            (actual time=0.073..122.954 rows=101896 loops=3)  Heap Fetches: 0
--            EVALUATIONS_SQL Execution Time: 1493.850 ms
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
