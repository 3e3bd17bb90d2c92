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


class StoreUnreadable(LocalError):
    """The node's database cannot be read (damaged, or of another format): the node
    cannot start until a person restores or moves it; starting again will not help."""


class CannotListen(LocalError):
    """The node cannot take its address: the port is in use or the address is not this
    machine's; starting again will not help until a person changes something."""


class DataDirBusy(LocalError):
    """Another daemon runs on this data dir."""


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
