"""Control operations: one explicit table from op name to its spec.

Each op gets an `OpContext` (state, config, a view of the network), never the daemon;
see `node.ops.base`.

The table names every op and the module that defines it; a module is imported the
first time a request names one of its ops, so that a daemon carries in memory only
the ops it has been asked for (the governance tallies, sortition and deliberation
stay unloaded until someone votes, draws or discusses). The op set, the argument
checks and the replies are the module's own `OPS`, unchanged;
`tests/test_ops_lazy.py` checks that this table names exactly those ops.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping

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

# Module (under node.ops) -> the ops it defines, in its `OPS` order.
MODULES: dict[str, tuple[str, ...]] = {
    "node_ops": (
        "status", "post", "withdraw", "list", "items", "item_add", "balance", "peers",
        "history", "rollups", "peers_add", "peers_remove", "nodes", "digest", "submit",
    ),
    "gov_ops": (
        "gov_member_add", "gov_member_remove", "gov_member_list", "gov_proposal_create",
        "gov_proposal_list", "gov_proposal_show", "gov_proposal_close", "gov_vote_prepare",
        "gov_results", "gov_vote_check", "gov_vote_receipt", "gov_budget_import",
        "gov_assembly_create", "gov_assembly_prepare", "gov_assembly_freeze",
        "gov_assembly_commit", "gov_assembly_seal", "gov_assembly_reveal",
        "gov_assembly_draw", "gov_assembly_verify", "gov_assembly_show",
        "gov_assembly_list",
    ),
    "trust_ops": ("federation", "admission", "endorse", "invite_create"),
    "match_ops": (
        "match", "capacities", "commitment_propose", "commitment_accept",
        "commitment_decline", "commitment_list", "fulfil", "confirm", "track_record",
        "committed",
    ),
    "plan_ops": (
        "plan_status", "plan_rounds", "plan_revise", "plan_review", "plan_approve",
        "cap_list", "cap_show", "cap_propose",
    ),
    "delib_ops": (
        "delib_discuss", "delib_opinions", "delib_prepare", "delib_amendment_decide",
        "delib_amendment_promote", "delib_amendment_preview", "delib_hide",
    ),
}  # fmt: skip


class OpTable(MutableMapping[str, OpSpec]):
    """Op name -> `OpSpec`, each module's `OPS` loaded when one of its ops is named.

    A plain mapping to its users (`get`, `in`, iteration in the modules' order); an
    entry set here (a benchmark's probe op) overrides the modules'.
    """

    def __init__(self, modules: dict[str, tuple[str, ...]]) -> None:
        self._module_of = {op: mod for mod, ops in modules.items() for op in ops}
        self._specs: dict[str, OpSpec] = {}

    def __getitem__(self, op: str) -> OpSpec:
        spec = self._specs.get(op)
        if spec is None:
            mod = self._module_of[op]  # KeyError: no such op
            loaded: dict[str, OpSpec] = importlib.import_module(f"node.ops.{mod}").OPS
            for name in self._module_of:
                if self._module_of[name] == mod and name not in self._specs:
                    self._specs[name] = loaded[name]
            spec = self._specs[op]
        return spec

    def __setitem__(self, op: str, spec: OpSpec) -> None:
        self._specs[op] = spec
        self._module_of.setdefault(op, "")

    def __delitem__(self, op: str) -> None:
        del self._module_of[op]
        self._specs.pop(op, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._module_of)

    def __len__(self) -> int:
        return len(self._module_of)

    def __contains__(self, op: object) -> bool:
        return op in self._module_of


TABLE = OpTable(MODULES)

__all__ = [
    "MODULES",
    "TABLE",
    "InThread",
    "Job",
    "NetView",
    "OpContext",
    "OpSpec",
    "OpTable",
    "Param",
    "Progress",
    "Submit",
    "Writes",
    "check_args",
]
