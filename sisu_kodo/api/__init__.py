"""HTTP API shim (FastAPI): enqueues and reads; the worker executes."""
