"""shoal's scheduler: a pure function from a cluster snapshot and pending pods to decisions.

Filters and scores are plugins (plugins/), policies are weight tables (policies.py), the batch
path (batch.py) evaluates whole fleets with numpy and must equal the reference loop
(reference.py). No I/O, no clock reads, no global state; imports only shoal.model, numpy, stdlib.
"""

from shoal.scheduler.api import schedule, schedule_reference
from shoal.scheduler.decisions import Binding, Decision, Preemption, Unschedulable
from shoal.scheduler.policies import POLICIES, Policy, PolicyName, UnknownPolicyError
from shoal.scheduler.reasons import Reason, format_message, insufficient
from shoal.scheduler.snapshot import ClusterSnapshot, NodeInfo

__all__ = [
    "POLICIES", "Binding", "ClusterSnapshot", "Decision", "NodeInfo", "Policy", "PolicyName", "Preemption",
    "Reason", "UnknownPolicyError", "Unschedulable", "format_message", "insufficient", "schedule",
    "schedule_reference",
]
