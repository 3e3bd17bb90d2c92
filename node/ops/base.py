"""What a control operation is: a declared argument schema, a function, a reply.

An op is ``fn(ctx, args) -> reply`` where `ctx` is an `OpContext` (the node's state,
its config and a narrow view of the network; never the daemon itself) and `args` has
been checked against the op's declared `Param`s: unknown, missing, ill-typed or
out-of-range arguments are refused with a message before the op runs. A reply is
plain JSON (or `node.control.JsonText`: JSON already printed), or one of the markers
below, which the daemon carries out off the event loop: `InThread` (slow pure work),
`Writes` (signed records to make durable, then merge), `Submit` (records signed by
members, to check and store), `Job` (long work with progress, e.g. an import).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from node.config import Config
from node.core import IngestResult, Pending
from node.crdt.record import Record
from node.errors import LocalError
from node.state import NodeState, record_json


class NetView(Protocol):
    """The part of the network an op may see or ask for."""

    @property
    def peer_id(self) -> str: ...

    def listen_addrs(self) -> list[str]: ...

    def connected_peers(self) -> list[str]: ...

    def statistics(self) -> Any: ...

    def add_bootstrap(self, p2p_addr: str) -> str: ...

    async def connect(self, p2p_addr: str) -> bool: ...

    async def remove_peer(self, peer_id: str) -> None: ...


class OpContext(Protocol):
    """What ops get: state, config, the network view, counters, time."""

    @property
    def state(self) -> NodeState: ...

    @property
    def net(self) -> NetView: ...

    @property
    def counters(self) -> Mapping[str, Counter[str]]: ...

    @property
    def config(self) -> Config: ...

    def save_config(self, config: Config) -> None:
        """Persist a changed config (atomic file replace)."""
        ...

    def dial_soon(self, p2p_addr: str) -> None:
        """Dial a peer in the background."""
        ...

    def now_ms(self) -> int: ...

    def uptime(self) -> float: ...


Progress = Callable[[int, int, str], None]  # (done, total, what)


@dataclass(frozen=True)
class InThread:
    """A reply too slow to compute on the event loop (a budget tally, say).

    `fn` runs in a worker thread while the node keeps serving the network; it must
    only read what it was given (an immutable snapshot), never live state.
    """

    fn: Callable[[], Any]


@dataclass(frozen=True)
class Writes:
    """Local writes to make durable in one transaction, then merge; then `reply`.

    `foreign` are records signed here with keys other than the node's (an import's
    demo voters): stored in the same transaction and merged as verified.
    `reply(records)` gets the node's own records, in order.
    """

    pendings: Sequence[Pending]
    reply: Callable[[list[Record]], Any]
    foreign: Sequence[Record] = ()


@dataclass(frozen=True)
class Submit:
    """Records signed elsewhere (a member's key) to check, store durably and gossip;
    `reply(result)` turns the `IngestResult` into the answer."""

    raws: Sequence[bytes]
    reply: Callable[[IngestResult], Any]


@dataclass(frozen=True)
class Job:
    """Long work: `run(progress)` is awaited on the loop and reports progress."""

    run: Callable[[Progress], Awaitable[Any]]


@dataclass(frozen=True)
class Param:
    """One declared argument.

    Attributes:
        kind: the JSON type: str, int, bool, list or dict.
        required: must be given (and not null).
        default: used when absent.
        low, high: bounds of an int.
        max_len: characters of a str, items of a list, entries of a dict.
        items: the type of each list item, if checked.
    """

    kind: type
    required: bool = False
    default: Any = None
    low: int | None = None
    high: int | None = None
    max_len: int = 1000
    items: type | None = None


@dataclass(frozen=True)
class OpSpec:
    """An op: its function, its arguments, and the payload it accepts (bytes)."""

    fn: Callable[[OpContext, dict[str, Any]], Any]
    params: Mapping[str, Param] = field(default_factory=dict)
    max_payload: int = 0


_NAMES = {str: "text", int: "an integer", bool: "true or false", list: "a list", dict: "a map"}


def check_args(op: str, spec: OpSpec, args: Mapping[str, Any]) -> dict[str, Any]:
    """Check `args` against the op's declared parameters; fill in defaults.

    Raises:
        LocalError: naming the argument and what it must be.
    """
    unknown = sorted(set(args) - set(spec.params) - ({"payload"} if spec.max_payload else set()))
    if unknown:
        raise LocalError(f"{op}: unknown argument(s) {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for name, p in spec.params.items():
        value = args.get(name)
        if value is None:
            if p.required:
                raise LocalError(f"{op}: argument {name!r} is required")
            out[name] = p.default
            continue
        out[name] = _check_value(op, name, p, value)
    if spec.max_payload:
        out["payload"] = args.get("payload", b"")
    return out


def _check_value(op: str, name: str, p: Param, given: Any) -> Any:
    value: Any = given
    what = _NAMES.get(p.kind, p.kind.__name__)
    actual: type = type(value)
    if actual is not p.kind:  # bool is not an int here
        raise LocalError(f"{op}: argument {name!r} must be {what}")
    if p.kind is int:
        if (p.low is not None and value < p.low) or (p.high is not None and value > p.high):
            raise LocalError(f"{op}: argument {name!r} must be an integer from {p.low} to {p.high}")
    elif p.kind is str and len(value) > p.max_len:
        raise LocalError(f"{op}: {name} is {len(value)} characters long; the limit is {p.max_len}")
    elif p.kind in (list, dict) and len(value) > p.max_len:
        unit = "items" if p.kind is list else "entries"
        raise LocalError(f"{op}: {name} has {len(value)} {unit}; the limit is {p.max_len}")
    if p.kind is list and p.items is not None:
        for item in value:
            if type(item) is not p.items:
                raise LocalError(
                    f"{op}: every item of {name!r} must be {_NAMES.get(p.items, 'valid')}"
                )
    return value


def STR(required: bool = False, max_len: int = 200, default: Any = None) -> Param:
    return Param(str, required=required, max_len=max_len, default=default)


def INT(low: int, high: int, *, required: bool = False, default: Any = None) -> Param:
    return Param(int, required=required, low=low, high=high, default=default)


def BOOL(default: bool = False) -> Param:
    return Param(bool, default=default)


def LIST(items: type | None = None, max_len: int = 256, *, required: bool = False) -> Param:
    return Param(list, required=required, max_len=max_len, items=items)


def DICT(max_len: int = 64, *, required: bool = False) -> Param:
    return Param(dict, required=required, max_len=max_len)


def written(ctx: OpContext) -> Any:
    """A `Writes` reply callback: the last record as the CLI shows it."""

    def reply(records: list[Record]) -> dict[str, Any]:
        return record_json(records[-1], ctx.state.node_names())

    return reply
