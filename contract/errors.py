"""The one base class of user errors. Standard library only.

A ``UserError`` is bad input from a person or a document (a trigger-form value, a model or group
name, a metadata file, a batch): its message names the field and the fix, and nothing stored is
lost. Retrying meets the same input again, so an Airflow task that raises one fails at once
(``vigil.airflow.dag_wiring.fail_fast``) instead of spending its retries; infrastructure errors (a
database that is down, a full disk, a killed stage) stay retryable. It is a ``ValueError``, so
code that catches ``ValueError`` keeps working.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from a user; the message names the field and the fix. Not retried."""
