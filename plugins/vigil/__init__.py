"""Vigil core, in layers (each imports only those below it; docs/architecture.md, checked by
import-linter): cli -> airflow -> importer -> groups -> lifecycle -> registry -> storage -> settings."""

__version__ = "0.1.0"
