"""Import models trained elsewhere, with their metadata, into the registry.

``import_path(PATH, registry, name=..., family=..., trust_pickle=..., llm_mapper=..., dry_run=...)``
reads a JSON/YAML metadata file, a Hugging Face model card, an MLflow run or model, a W&B export,
a causal-LM folder or a scikit-learn folder; maps what it says onto ``ImportedRecord`` through
the single rules table in ``rules.py``; and registers one version with ``source=import``, the
hashes of its files, the original document verbatim and a report of what was mapped from where,
what was ignored and what is missing. Bad input raises ``ImportRefused`` and writes nothing.
"""

from vigil.importer.errors import ImportRefused
from vigil.importer.service import ImportPlan, ImportResult, execute_plan, import_path, plan_import

__all__ = ["ImportRefused", "ImportPlan", "ImportResult", "execute_plan", "import_path", "plan_import"]
