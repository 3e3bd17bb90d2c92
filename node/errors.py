"""One exception root for Allmende, split by who is at fault.

`LocalError` is misuse by the person or program driving this node: its message says
what to do. `RemoteError` is something a peer sent: it is logged, counted by its
`reason` and the peer may be penalised, but it never crashes the node.
"""

from __future__ import annotations


class AllmendeError(Exception):
    """Root of every error Allmende raises on purpose."""


class LocalError(AllmendeError):
    """Local misuse: bad input from the user or a caller; the message is for a person."""


class RemoteError(AllmendeError):
    """Bad input from the network: counted by `reason`, never fatal."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Rejected(RemoteError):
    """A record that must not enter the replica.

    Attributes:
        reason: short stable code used for counting (e.g. ``bad-signature``).
        detail: what exactly is wrong, for the log.
    """


class ValidationError(LocalError):
    """A record body that does not fit its kind; the message says how to fix it."""
