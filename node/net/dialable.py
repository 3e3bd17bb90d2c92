"""The addresses peers can dial this node at, from what it listens on.

A node listening on ``/ip4/0.0.0.0/...`` accepts on every interface, but nobody can dial
0.0.0.0: `dialable` puts each interface's address in its place (non-loopback first,
loopback last) and the configured public addresses (`[network] announce`, e.g. a VPS's
public IP or a router's forwarded port) before all. Pure; `interface_ips` is the edge.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Sequence

logger = logging.getLogger("allmende.net")

_ANY = {"/ip4/0.0.0.0/": "ip4", "/ip6/::/": "ip6"}


def dialable(
    listen: Sequence[str], ips: Iterable[str], announce: Sequence[str], peer_id: str
) -> list[str]:
    """Dialable multiaddrs, each ending in ``/p2p/<peer_id>``, without duplicates.

    Args:
        listen: the bound listen addresses (with or without the /p2p/ suffix).
        ips: the interfaces' IP addresses (v4 and v6; link-local ones are left out:
            they need a zone a multiaddr cannot carry).
        announce: public addresses to list first.
        peer_id: this node's peer id.
    """
    suffix = f"/p2p/{peer_id}"
    v4: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    v6: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for text in ips:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            continue
        if ip.is_link_local or ip.is_unspecified:
            continue
        (v4 if ip.version == 4 else v6).append(ip)
    ordered = {
        "ip4": [str(ip) for ip in sorted(v4, key=lambda i: (i.is_loopback, i))],
        "ip6": [str(ip) for ip in sorted(v6, key=lambda i: (i.is_loopback, i))],
    }
    out = [a if a.endswith(suffix) else a + suffix for a in announce]
    late: list[str] = []
    for addr in listen:
        bare = addr.split("/p2p/")[0]
        wildcard = next((w for w in _ANY if bare.startswith(w)), None)
        if wildcard is None:
            out.append(bare + suffix)
            continue
        rest = bare[len(wildcard) :]
        proto = _ANY[wildcard]
        for text in ordered[proto]:
            full = f"/{proto}/{text}/{rest}{suffix}"
            (late if ipaddress.ip_address(text).is_loopback else out).append(full)
    return list(dict.fromkeys([*out, *late]))


def interface_ips() -> list[str]:
    """The IP addresses of this machine's interfaces (empty if they cannot be read)."""
    try:
        import ifaddr

        return [
            ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            for adapter in ifaddr.get_adapters()
            for ip in adapter.ips
        ]
    except Exception as exc:  # an unreadable interface list must not break status
        logger.warning("cannot list network interfaces: %s", exc)
        return []
