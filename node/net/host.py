"""Build a py-libp2p host from the node's Ed25519 seed: TCP, Noise only, yamux.

py-libp2p's ``new_host`` offers ``/plaintext/2.0.0``, ``/secio/1.0.0`` and TLS next to
Noise when ``sec_opt`` is not given, so an attacker could downgrade a connection to
plaintext.  We always pass a Noise-only ``sec_opt`` and a yamux-only ``muxer_opt``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket as stdlib_socket
from collections.abc import Sequence

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IHost
from libp2p.crypto.ed25519 import create_new_key_pair as ed25519_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.transport.tcp import tcp as _tcp

from node.errors import LocalError

SEED_SIZE = 32
DEFAULT_LISTEN_ADDRS: tuple[str, ...] = ("/ip4/127.0.0.1/tcp/0",)


class _DropCancelledNoise(logging.Filter):
    """Drop py-libp2p log records caused only by trio cancellation (our shutdown)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        candidates = [exc, *(record.args if isinstance(record.args, tuple) else ())]
        return not any(_only_cancelled(c) for c in candidates if c is not None)


def _only_cancelled(obj: object) -> bool:
    if isinstance(obj, trio.Cancelled):
        return True
    if isinstance(obj, BaseExceptionGroup):
        return all(_only_cancelled(e) for e in obj.exceptions)
    return False


_NOISE_FILTER = _DropCancelledNoise()


def _set_reuseaddr_only(sock: trio.socket.SocketType) -> None:
    # SO_REUSEADDR lets a restarted node listen again at once (sockets of its last run
    # in TIME_WAIT). py-libp2p also sets SO_REUSEPORT, for TCP hole punching, which we
    # do not use: with it, a second node on the same port binds without an error and
    # the kernel shares incoming connections between the two.
    with contextlib.suppress(OSError):
        sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEADDR, 1)


# py-libp2p 0.8.1 calls this module-level helper for every TCP listener it opens.
_tcp._set_reuse_flags = _set_reuseaddr_only


def route_libp2p_logging() -> None:
    """Send py-libp2p's log records through the application's logging config.

    Without LIBP2P_DEBUG, py-libp2p clears the handlers of its ``libp2p`` logger and
    turns propagation off (utils/logging.py setup_logging), so its warnings reach
    stderr through logging's last-resort handler, outside the daemon's config.
    Idempotent; does nothing when LIBP2P_DEBUG is set (py-libp2p's own setup wins).
    """
    if os.environ.get("LIBP2P_DEBUG"):
        return
    root = logging.getLogger("libp2p")
    root.propagate = True
    root.setLevel(logging.WARNING)
    # network/auto_connector.py forces INFO on itself at import time.
    logging.getLogger("libp2p.network.auto_connector").setLevel(logging.WARNING)
    for name in ("libp2p", "libp2p.network.swarm"):
        logger = logging.getLogger(name)
        if _NOISE_FILTER not in logger.filters:
            logger.addFilter(_NOISE_FILTER)


def key_pair_from_seed(seed: bytes) -> KeyPair:
    """Return the libp2p Ed25519 key pair for a 32-byte seed.

    Args:
        seed: the node's 32-byte Ed25519 private seed (RFC 8032).

    Raises:
        LocalError: the seed is not 32 bytes.
    """
    if len(seed) != SEED_SIZE:
        raise LocalError(f"identity seed must be {SEED_SIZE} bytes, got {len(seed)}")
    return ed25519_key_pair(seed=bytes(seed))


def peer_id_from_seed(seed: bytes) -> str:
    """Return the base58 libp2p peer id (``12D3KooW...``) that a host built from `seed` has."""
    return ID.from_pubkey(key_pair_from_seed(seed).public_key).to_base58()


def build_host(
    seed: bytes,
    listen_addrs: Sequence[str] = DEFAULT_LISTEN_ADDRS,
    *,
    enable_mdns: bool = False,
) -> IHost:
    """Create (not start) a libp2p host: TCP transport, Noise only, yamux only.

    Start it with ``async with host.run(listen_addrs=...)``; `NetService` does that.

    Args:
        seed: the node's 32-byte Ed25519 seed; the peer id derives from it.
        listen_addrs: TCP multiaddrs; they select the transports py-libp2p builds.
        enable_mdns: let py-libp2p's mDNS announce and discover peers on the LAN.

    Raises:
        LocalError: bad seed or a listen address that is not a TCP multiaddr.
    """
    key_pair = key_pair_from_seed(seed)
    addrs = parse_listen_addrs(listen_addrs)
    route_libp2p_logging()
    # A fresh X25519 static key per host run, as py-libp2p does itself; the Noise
    # handshake payload binds it to the Ed25519 identity key.
    noise = NoiseTransport(key_pair, noise_privkey=x25519_key_pair().private_key)
    return new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: noise},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        listen_addrs=addrs,
        enable_mDNS=enable_mdns,
    )


def parse_listen_addrs(listen_addrs: Sequence[str]) -> list[multiaddr.Multiaddr]:
    """Parse and check listen addresses (TCP over ip4/ip6 only).

    Raises:
        LocalError: an address does not parse or is not plain TCP.
    """
    if not listen_addrs:
        raise LocalError("at least one listen address is needed, e.g. /ip4/0.0.0.0/tcp/4001")
    out: list[multiaddr.Multiaddr] = []
    for text in listen_addrs:
        try:
            addr = multiaddr.Multiaddr(text)
        except Exception as exc:
            raise LocalError(f"listen address {text!r} is not a multiaddr: {exc}") from exc
        names = [p.name for p in addr.protocols()]
        if len(names) != 2 or names[0] not in ("ip4", "ip6") or names[1] != "tcp":
            raise LocalError(f"listen address {text!r} must look like /ip4/<ip>/tcp/<port>")
        out.append(addr)
    return out
