"""The contract between the stage container, the Airflow side, the evaluation code and the site.

Defined once, read by every side: which stages exist and what each needs from the host
(:mod:`contract.stages`), which metrics exist, what they mean and which way is better
(:mod:`contract.metrics`), how artifacts are hashed (:mod:`contract.hashing`), the identifier
rules (:mod:`contract.names`), the one JSON normaliser (:mod:`contract.jsonsafe`), the one base
class of user errors (:mod:`contract.errors`), the ``manifest.json`` a stage hands back
(:mod:`contract.manifest`), the base every stage spec extends (:mod:`contract.spec`), each stage's
spec schema (:mod:`contract.specs`, looked up with ``contract.specs.spec_for``), a batch's report
(:mod:`contract.batch`) and the scan zoo's grid (:mod:`contract.zoo`). The standard library and pydantic only: no torch, no Airflow, no
numpy, so the lowest layer of the import rules (``pyproject.toml`` [tool.importlinter]) may hold it.
"""
