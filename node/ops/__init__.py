"""Control operations: one explicit table from op name to its spec.

Each op gets an `OpContext` (state, config, a view of the network), never the daemon;
see `node.ops.base`.
"""

from node.ops import delib_ops, gov_ops, match_ops, node_ops, plan_ops, trust_ops
from node.ops.base import (
    InThread,
    Job,
    NetView,
    OpContext,
    OpSpec,
    Param,
    Progress,
    Submit,
    Writes,
    check_args,
)

TABLE: dict[str, OpSpec] = {
    **node_ops.OPS,
    **gov_ops.OPS,
    **trust_ops.OPS,
    **match_ops.OPS,
    **plan_ops.OPS,
    **delib_ops.OPS,
}

__all__ = [
    "TABLE",
    "InThread",
    "Job",
    "NetView",
    "OpContext",
    "OpSpec",
    "Param",
    "Progress",
    "Submit",
    "Writes",
    "check_args",
]
