"""Pydantic models that cross a process boundary (HTTP bodies, workflow I/O, events)."""
