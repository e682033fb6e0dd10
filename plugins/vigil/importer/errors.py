"""The one error an import raises for bad input: the message names the field and the fix."""

from __future__ import annotations

from contract.errors import UserError


class ImportRefused(UserError):
    """The import was refused before anything was written."""
