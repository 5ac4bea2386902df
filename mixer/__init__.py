"""Placeholder package: implemented by its own issue."""
