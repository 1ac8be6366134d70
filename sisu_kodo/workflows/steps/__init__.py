"""Steps: every piece of I/O the workflows do, each checkpointed by DBOS.

Two kinds:
- *calls* (`DBOS.run_step`): the planner and the sandbox. At-least-once by nature;
  their results are checkpointed so a replay does not call again once recorded.
- *records* (`ledger.transaction`): ledger writes committed in the same transaction as
  DBOS's checkpoint, so each happens exactly once even if a worker dies mid-way.

Modules: `ledger` (the transaction decorator, shared writes), `planning` (CompileST,
DecideST, the gate), `execution` (ExecuteST's fan-out and aggregation), `attempts`
(one task's sandbox attempts and their ledger rows).
"""
