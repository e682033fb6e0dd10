"""The Airflow glue: DAG wiring (spec -> run -> record tasks, run callbacks, assets), the stage
runners and their operators (local subprocess, Docker), the registered-stage DAG factory, trigger
forms generated from the stages' specs, the Airflow environment Vigil runs under, and the UI
plugin (the Reports entry). The only part of the core that imports Airflow; the node functions it
wires live below it (``vigil.lifecycle``, ``vigil.groups``, ``vigil.registry``).

Named ``vigil.airflow``: absolute imports (``from airflow.sdk import ...``) still reach the real
Airflow package. Airflow's plugin manager loads ``reports_plugin.py`` by file path from the plugins
folder (``plugins/.airflowignore`` hides the rest of the package from it).
"""
