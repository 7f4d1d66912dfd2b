"""Temporal API tests (both engines)."""
