"""DBOS workflows (control flow), steps (I/O), queues and the runtime they run in."""
