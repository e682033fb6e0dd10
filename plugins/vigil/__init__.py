"""Vigil core: settings, warehouse, registry, model groups, stage operators, CLI."""

__version__ = "0.1.0"
