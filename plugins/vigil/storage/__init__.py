"""Storage: the warehouse database (embedded or configured PostgreSQL), its Alembic migrations,
and the Parquet store. Below everything else in the core; imports only ``vigil.settings``."""
