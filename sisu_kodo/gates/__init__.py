"""Human gates: approval deadlines (the gate sweep) and what an approval covers."""

from sisu_kodo.gates.deadlines import APPROVAL_EXPIRED, GateSweep, approval_ttl, check_ttl

__all__ = ["APPROVAL_EXPIRED", "GateSweep", "approval_ttl", "check_ttl"]
