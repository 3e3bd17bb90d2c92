"""Load the parts of py-libp2p the node does not use only when something uses them.

py-libp2p 0.8.1 imports every transport and service it has when any of its modules is
imported: ``libp2p/__init__.py`` builds QUIC, TLS and WebSocket transports,
``host/basic_host.py`` imports mDNS (zeroconf), circuit relay (with the Kademlia DHT)
and AutoTLS (httpx, requests), the TCP transport imports a DNS resolver (dnspython).
A node that speaks TCP with Noise and yamux uses none of them unless it turns mDNS
on or dials a ``/dns4`` address, yet they took ~27 MB of the daemon's resident
memory (docs/benchmarks.md, issue 15). Hypercorn, which serves the web app, likewise
imports HTTP/2 and WebSockets the web app does not serve (~1 MB): two of its
modules are in the list as well.

`install` puts a stand-in module into ``sys.modules`` for each module of `DEFERRED`
that is not imported yet. A stand-in hands out the names it declares as
`Deferred` values: using one (calling it, or using an attribute of it after the
import) imports the real module and forwards to it, so code that does need it (mDNS
on, a ``/dns4`` bootstrap address, a peer with an RSA key) runs as before, only
later. Until then nothing can be an instance of a deferred class, so
``isinstance(x, a deferred class)`` answers False without importing. A name a
stand-in does not declare, or a submodule imported below it, imports the real module
at once.

Rules for a module in `DEFERRED` (read off its importers in py-libp2p 0.8.1 and
Hypercorn 0.18; tests/net/test_deferred.py checks that every declared name exists):
every importer uses its names only to call them, in annotations or typing aliases,
or in ``isinstance``; never as a base class, an ``except`` clause or a value
compared by identity at import time. Exception modules are therefore never deferred.

`install` must run before the first ``libp2p`` import of the process: importing
this module runs it, ``node.net`` imports it first thing, and ``node.daemon``
imports ``node.net`` before any libp2p module; ``web`` imports it before Hypercorn.
A process that imported py-libp2p before (a test, the simnet) keeps the modules it
has; `install` only defers what is not loaded yet.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import types
from typing import Any

# Module -> the names its importers take from it, and what it would bring in.
DEFERRED: dict[str, tuple[tuple[str, ...], str]] = {
    "libp2p.transport.quic.stream": (("QUICStream",), "QUIC (aioquic, pyOpenSSL)"),
    "libp2p.transport.quic.transport": (("QUICTransport",), "QUIC (aioquic, pyOpenSSL)"),
    "libp2p.transport.quic.utils": (("is_quic_multiaddr",), "QUIC (aioquic)"),
    "libp2p.transport.quic.config": (("QUICTransportConfig",), "QUIC settings"),
    "libp2p.transport.websocket.transport": (
        ("WebsocketTransport",),
        "WebSocket transport (trio-websocket)",
    ),
    "libp2p.security.tls": ((), "TLS security (the node offers Noise only)"),
    "libp2p.security.tls.transport": (
        ("PROTOCOL_ID", "TLSTransport"),
        "TLS security (the node offers Noise only)",
    ),
    "libp2p.security.tls.autotls.acme": (
        ("ACMEClient", "compute_b36_peer_id"),
        "AutoTLS certificates (httpx, requests)",
    ),
    "libp2p.security.tls.autotls.broker": (("BrokerClient",), "AutoTLS (httpx, requests)"),
    # py-libp2p's BasicHost reads X.509 certificates for AutoTLS only (2.5 MB imported
    # alone, 0.9 MB of the daemon's RSS: the Rust bindings are loaded either way).
    "cryptography.x509": (
        ("load_pem_x509_certificates", "DNSName"),
        "X.509 certificates: py-libp2p's AutoTLS (the node offers Noise only)",
    ),
    "cryptography.x509.oid": (("ExtensionOID",), "X.509 object ids (with cryptography.x509)"),
    "libp2p.relay.circuit_v2.nat": (("is_private_ip",), "circuit relay and the Kademlia DHT"),
    "libp2p.discovery.mdns.mdns": (
        ("MDNSDiscovery", "create_mdns_discovery"),
        "mDNS (zeroconf): imported when mDNS is on",
    ),
    "multiaddr.resolvers": (("DNSResolver",), "DNS (dnspython): imported to dial /dns4"),
    "libp2p.crypto.rsa": (
        ("RSAPrivateKey", "RSAPublicKey", "create_new_key_pair"),
        "RSA keys (pycryptodome): imported for a peer with an RSA key",
    ),
    "libp2p.crypto.secp256k1": (
        ("Secp256k1PrivateKey", "Secp256k1PublicKey", "create_new_key_pair"),
        "secp256k1 keys (coincurve): imported for a peer with such a key",
    ),
    "libp2p.security.secio.transport": (
        ("ID", "Transport"),
        "SECIO security (pycryptodome; the node offers Noise only)",
    ),
    "libp2p.security.pnet.protector": (
        ("new_protected_conn",),
        "private networks (pycryptodome's Salsa20): the node sets no pre-shared key",
    ),
    "prometheus_client": (
        ("Counter", "Histogram", "Gauge", "start_http_server"),
        "py-libp2p's metrics (off; its swarm imports them for an event class); "
        "node.metrics imports it when [metrics] port is set",
    ),
    "libp2p.rcmgr.prometheus_exporter": (
        ("PrometheusExporter", "create_prometheus_exporter"),
        "py-libp2p's Prometheus exporter (off; the node has its own, node.metrics)",
    ),
    # Hypercorn 0.18 (the web app's server) imports HTTP/2 (h2, hpack) and WebSockets
    # (wsproto) for every connection type it can serve; the web app serves HTTP/1.1
    # with no WebSocket route. A client that asks for h2 or a WebSocket imports them.
    "hypercorn.protocol.h2": (("H2Protocol",), "HTTP/2 (h2, hpack): imported for an h2 client"),
    "hypercorn.protocol.ws_stream": (
        ("WSStream",),
        "WebSockets (wsproto): imported for a WebSocket upgrade request",
    ),
    # No names: Hypercorn's typing module imports it for annotations only; h2's own
    # modules take its event classes, which imports it (with hyperframe).
    "h2.events": ((), "HTTP/2 events (h2, hyperframe): imported with HTTP/2"),
}

# Classes whose instances py-libp2p makes where nothing uses them (``Swarm.__init__``
# and discovery/bootstrap make a DNSResolver): calling one gives a deferred
# instance, made when it is first used.
CONSTRUCTED_ON_USE: frozenset[tuple[str, str]] = frozenset({("multiaddr.resolvers", "DNSResolver")})

_lock = threading.RLock()
_CALL = object()  # marks a call step in a Deferred's path


class Deferred:
    """A name of a deferred module, or a path below it; imports the module on use."""

    __slots__ = ("_module", "_path", "_value")

    def __init__(self, module: str, path: tuple[Any, ...]) -> None:
        self._module = module
        self._path = path
        self._value: Any = _CALL  # not resolved yet

    # No methods of its own beyond dunders: every other name is the real value's
    # (a deferred DNSResolver's ``resolve``), see `resolve`.

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        made_on_use = len(self._path) == 1 and (self._module, self._path[0]) in CONSTRUCTED_ON_USE
        if made_on_use and _is_stand_in(self._module):
            return Deferred(self._module, (*self._path, (_CALL, args, kwargs)))
        return resolve(self)(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or self._value is not _CALL or not _is_stand_in(self._module):
            return getattr(resolve(self), name)
        # An attribute read at import time (py-libp2p's deserializer tables take
        # ``RSAPublicKey.from_bytes``) stays deferred until it is used; once the
        # module is imported, it is the real attribute (``ExtensionOID.X`` handed to
        # cryptography's own code).
        return Deferred(self._module, (*self._path, name))

    def __instancecheck__(self, obj: object) -> bool:
        if _is_stand_in(self._module):
            return False  # the class was never created, so nothing is an instance
        return isinstance(obj, resolve(self))

    def __subclasscheck__(self, cls: type) -> bool:
        if _is_stand_in(self._module):
            return False
        return issubclass(cls, resolve(self))

    def __or__(self, other: object) -> Any:  # ``X | None`` in a runtime annotation
        return Any

    __ror__ = __or__

    def __repr__(self) -> str:
        steps = ".".join(s if isinstance(s, str) else "()" for s in self._path)
        return f"<deferred {self._module}:{steps}>"


def resolve(deferred: Deferred) -> Any:
    """Import the real module (once) and return the real value of `deferred` (once)."""
    if deferred._value is _CALL:
        value: Any = load(deferred._module)
        for step in deferred._path:
            if isinstance(step, tuple) and step and step[0] is _CALL:
                value = value(*step[1], **step[2])
            else:
                value = getattr(value, step)
        deferred._value = value
    return deferred._value


class StandIn(types.ModuleType):
    """What ``sys.modules`` holds for a deferred module until it is used."""

    def __init__(self, name: str, names: tuple[str, ...]) -> None:
        super().__init__(name, f"stand-in for {name}, imported when used (node.net.deferred)")
        self.__deferred_names__ = names
        # A submodule imported below a stand-in imports the real package first
        # (`_BelowStandIn`); the import system asks for a __path__ before it looks.
        self.__path__: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name in self.__deferred_names__:
            return Deferred(self.__name__, (name,))
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(load(self.__name__), name)


def _is_stand_in(module: str) -> bool:
    return isinstance(sys.modules.get(module), StandIn)


class _Existing(importlib.abc.Loader):
    """Hands the import system a module that is already imported (and leaves it be)."""

    def __init__(self, module: types.ModuleType) -> None:
        self.module = module
        self.spec = module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return self.module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__ = self.spec  # the import system set its own


class _BelowStandIn(importlib.abc.MetaPathFinder):
    """Finds a submodule of a deferred package (``prometheus_client.core``): imports
    the real package first, as importing the submodule would have."""

    def find_spec(
        self, name: str, path: Any, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        parent = name.rpartition(".")[0]
        if not parent or not _is_stand_in(parent):
            return None
        load(parent)
        existing = sys.modules.get(name)
        if existing is not None:  # the package's own __init__ imported it
            return importlib.machinery.ModuleSpec(name, _Existing(existing))
        return importlib.util.find_spec(name)


_FINDER = _BelowStandIn()


def install() -> list[str]:
    """Put stand-ins for the `DEFERRED` modules not imported yet; return their names."""
    put = []
    with _lock:
        if _FINDER not in sys.meta_path:
            sys.meta_path.insert(0, _FINDER)
        for name, (names, _why) in DEFERRED.items():
            if name not in sys.modules:
                sys.modules[name] = StandIn(name, names)
                put.append(name)
    return put


def load(name: str) -> types.ModuleType:
    """Import the real module `name` in place of its stand-in (idempotent)."""
    with _lock:
        current = sys.modules.get(name)
        if current is not None and not isinstance(current, StandIn):
            return current
        # A deferred package above it (libp2p.security.tls) is imported first: a
        # stand-in has no __path__ to import submodules from.
        parts = name.split(".")
        for i in range(1, len(parts)):
            if _is_stand_in(".".join(parts[:i])):
                load(".".join(parts[:i]))
        current = sys.modules.get(name)
        if current is None or not isinstance(current, StandIn):
            return current if current is not None else importlib.import_module(name)
        del sys.modules[name]
        try:
            module = importlib.import_module(name)
        except BaseException:
            if current is not None:
                sys.modules[name] = current
            raise
        return module


def deferred_now() -> list[str]:
    """The `DEFERRED` modules still held by a stand-in (not imported) in this process."""
    return [name for name in DEFERRED if _is_stand_in(name)]


install()
