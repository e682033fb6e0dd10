"""The lifecycle's node functions, free of Airflow: trigger-form params and upstream results ->
stage specs (:mod:`vigil.lifecycle.specs`), and what the nightly evaluation runs on each
registered version (:mod:`vigil.lifecycle.nightly`). Reads the registry; nothing above it."""
