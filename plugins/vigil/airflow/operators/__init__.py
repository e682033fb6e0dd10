"""Airflow operators that run lifecycle stages (one operator a module)."""
