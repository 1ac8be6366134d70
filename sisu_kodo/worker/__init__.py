"""The worker process: runs workflows, heartbeats, serves its admin port."""
