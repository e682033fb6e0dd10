"""The registry: models and versions (artifact URI, sha256, params, lineage), runs and
evaluations (:mod:`vigil.registry.versions`), and the recording of a stage's manifest into them
(:mod:`vigil.registry.ingest`). Imports ``vigil.storage`` and the stage contract
``contract.manifest``; nothing above it."""
