"""Model groups, bottom to top: records and names (:mod:`~vigil.groups.records`), the
``inference_log_<slug>`` table (:mod:`~vigil.groups.log_table`), membership with roles, weights
and the audit trail (:mod:`~vigil.groups.membership`), traffic routing
(:mod:`~vigil.groups.routing`), the nightly champion/challenger comparison
(:mod:`~vigil.groups.comparison`), batch scoring, labels and live metrics
(:mod:`~vigil.groups.inference_log`), and dataset registration (:mod:`~vigil.groups.datasets`).
Each module imports only those listed before it (import-linter checks there is no cycle)."""
