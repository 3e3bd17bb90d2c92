"""The daemon leaves py-libp2p's unused parts unloaded, and they still work when used.

Each check runs in a fresh interpreter: pytest's own process has imported py-libp2p
(the other net tests), and `node.net.deferred` only defers what is not loaded yet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Top-level packages the daemon must not import (docs/benchmarks.md, issue 15: together
# ~25 MB of resident memory): QUIC, TLS certificates, HTTP clients, DNS, mDNS, relay's
# DHT records, pycryptodome, coincurve.
HEAVY = (
    "aioquic",
    "OpenSSL",
    "service_identity",
    "httpx",
    "requests",
    "dns",
    "zeroconf",
    "trio_websocket",
    "cbor2",
    "Crypto",
    "coincurve",
    "libp2p.relay.circuit_v2.protocol",
    "libp2p.kad_dht",
    "libp2p.transport.quic.connection",
    # Hypercorn's HTTP/2 and WebSockets (the web app serves neither): ~1 MB
    "h2.connection",
    "hpack",
    "hyperframe",
    "wsproto",
    # X.509 (py-libp2p's AutoTLS only): 0.9 MB of the daemon's RSS
    "cryptography.x509.base",
    "cryptography.x509.extensions",
)


def run_fresh(code: str) -> dict:
    """Run `code` in a new interpreter with this worktree first; return its JSON print."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


LOADED = """
def loaded(names):
    import sys
    return sorted(n for n in names if n in sys.modules and not isinstance(
        sys.modules[n], __import__("node.net.deferred", fromlist=["x"]).StandIn))
"""


def test_daemon_imports_none_of_the_heavy_modules() -> None:
    got = run_fresh(
        LOADED
        + f"""
import json
import cli.main, node.daemon, web.app
from web import serve_web
from node.net import build_host
host = build_host(bytes(32))
print(json.dumps({{"loaded": loaded({HEAVY!r})}}))
"""
    )
    assert got["loaded"] == []


def test_every_deferred_name_exists_in_the_real_module() -> None:
    # Guards an upgrade of py-libp2p: a renamed name would only fail when first used.
    got = run_fresh(
        """
import importlib, json
from node.net import deferred
missing = []
for name, (names, _why) in deferred.DEFERRED.items():
    module = deferred.load(name)
    missing += [f"{name}:{n}" for n in names if not hasattr(module, n)]
print(json.dumps({"missing": missing, "left": deferred.deferred_now()}))
"""
    )
    assert got == {"missing": [], "left": []}


def test_a_deferred_class_answers_isinstance_without_importing() -> None:
    got = run_fresh(
        LOADED
        + """
import json
import node.net
from libp2p.discovery.mdns.mdns import MDNSDiscovery
before = isinstance(object(), MDNSDiscovery)
print(json.dumps({"isinstance": before, "loaded": loaded(["zeroconf"]),
                  "repr": repr(MDNSDiscovery)}))
"""
    )
    assert got == {
        "isinstance": False,
        "loaded": [],
        "repr": "<deferred libp2p.discovery.mdns.mdns:MDNSDiscovery>",
    }


def test_mdns_on_imports_zeroconf_and_builds_the_host() -> None:
    got = run_fresh(
        LOADED
        + """
import json
from node.net import build_host
host = build_host(bytes(32), enable_mdns=True)
from libp2p.discovery.mdns.mdns import MDNSDiscovery
print(json.dumps({"mdns": type(host.mDNS).__name__, "loaded": loaded(["zeroconf"]),
                  "isinstance": isinstance(host.mDNS, MDNSDiscovery)}))
"""
    )
    assert got == {"mdns": "MDNSDiscovery", "loaded": ["zeroconf"], "isinstance": True}


def test_dns_resolver_is_made_on_first_use_and_resolves() -> None:
    got = run_fresh(
        LOADED
        + """
import json, trio
from node.net import build_host
host = build_host(bytes(32))
quiet = loaded(["dns"])
from multiaddr import Multiaddr
from multiaddr.resolvers import DNSResolver

from node.net import deferred
maddr = Multiaddr("/dns4/localhost/tcp/4001")

async def main(resolver):
    return sorted(str(a) for a in await resolver.resolve(maddr))

addrs = trio.run(main, DNSResolver())
loaded_after = loaded(["dns"])
real = deferred.load("multiaddr.resolvers").DNSResolver()
print(json.dumps({"quiet": quiet, "loaded": loaded_after, "addrs": addrs,
                  "real": trio.run(main, real), "class": type(real).__name__}))
"""
    )
    assert got["quiet"] == []
    assert got["loaded"] == ["dns"]
    assert got["addrs"] == got["real"]
    assert got["addrs"]
    assert got["class"] == "DNSResolver"


@pytest.mark.parametrize("key_type", ["rsa", "secp256k1"])
def test_a_peer_key_of_a_deferred_type_still_deserialises(key_type: str) -> None:
    got = run_fresh(
        f"""
import json
import node.net
from libp2p.crypto.serialization import deserialize_public_key
from libp2p.peer.id import ID
if {key_type!r} == "rsa":
    from libp2p.crypto.rsa import create_new_key_pair
    pair = create_new_key_pair(bits=1024)
else:
    from libp2p.crypto.secp256k1 import create_new_key_pair
    pair = create_new_key_pair()
key = deserialize_public_key(pair.public_key.serialize())
print(json.dumps({{"same": key.to_bytes() == pair.public_key.to_bytes(),
                   "type": type(key).__name__,
                   "id": ID.from_pubkey(key) == ID.from_pubkey(pair.public_key)}}))
"""
    )
    assert got["same"] is True
    assert got["id"] is True
    assert got["type"] == {"rsa": "RSAPublicKey", "secp256k1": "Secp256k1PublicKey"}[key_type]


def test_a_module_imported_before_is_left_alone() -> None:
    got = run_fresh(
        """
import json
import libp2p.discovery.mdns.mdns as real
from node.net import deferred
print(json.dumps({"left": "libp2p.discovery.mdns.mdns" in deferred.deferred_now(),
                  "real": isinstance(real.MDNSDiscovery, type)}))
"""
    )
    assert got == {"left": False, "real": True}


def test_a_submodule_below_a_stand_in_imports_the_real_package_first() -> None:
    # node.metrics imports prometheus_client.core; the TLS certificate module sits
    # below the deferred libp2p.security.tls.
    got = run_fresh(
        """
import json, sys
import node.net
from node.net import deferred
names = ("prometheus_client", "libp2p.security.tls")
before = sorted(n for n in names if n in deferred.deferred_now())
from prometheus_client.core import CounterMetricFamily
import prometheus_client
import libp2p.security.tls.certificate as cert
import libp2p.security.tls as tls
print(json.dumps({
    "before": before,
    "left": [n for n in names if n in deferred.deferred_now()],
    "same": prometheus_client.core.CounterMetricFamily is CounterMetricFamily,
    "spec": prometheus_client.core.__spec__.name,
    "cert": cert.__name__, "tls": hasattr(tls, "TLSTransport"),
}))
"""
    )
    assert got == {
        "before": ["libp2p.security.tls", "prometheus_client"],
        "left": [],
        "same": True,
        "spec": "prometheus_client.core",
        "cert": "libp2p.security.tls.certificate",
        "tls": True,
    }


def test_hypercorn_still_serves_http2_and_websockets_when_a_client_asks() -> None:
    # The web app's server with its HTTP/2 and WebSocket modules deferred: a client
    # speaking h2 (prior knowledge) or asking for a WebSocket imports them and is served.
    got = run_fresh(
        LOADED
        + r"""
import json, trio
import web
from hypercorn.config import Config
from hypercorn.trio import serve

PARTS = ["h2.connection", "hyperframe", "wsproto"]
quiet = loaded(PARTS)

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
    elif scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
    elif scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

async def ask(port, data):
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(data)
    with trio.fail_after(10):
        return await stream.receive_some(4096)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
UPGRADE = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")

async def main():
    config = Config()
    config.bind = ["127.0.0.1:0"]
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(serve, app, config)
        port = int(binds[0].rsplit(":", 1)[1])
        h2 = await ask(port, PREFACE)
        ws = await ask(port, UPGRADE)
        nursery.cancel_scope.cancel()
    return h2, ws

h2, ws = trio.run(main)
print(json.dumps({"quiet": quiet, "loaded": loaded(PARTS),
                  "h2_frame_type": h2[3], "ws": ws.split(b"\r\n")[0].decode()}))
"""
    )
    assert got["quiet"] == []
    assert got["loaded"] == ["h2.connection", "hyperframe", "wsproto"]
    assert got["h2_frame_type"] == 4  # the server's SETTINGS frame
    assert got["ws"] == "HTTP/1.1 101 "


def test_autotls_certificate_reading_still_works_after_x509_was_deferred() -> None:
    # BasicHost's AutoTLS path (libp2p/host/basic_host.py): load a PEM chain, read
    # its subjectAltName with ExtensionOID, pick the DNS names with x509.DNSName.
    # The certificate is made here, in pytest's process; the fresh one only reads it.
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "node")])
    when = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(when)
        .not_valid_after(when + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("a.libp2p.direct")]), False)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    got = run_fresh(
        f"""
import json, sys
import node.net
from node.net import deferred
from libp2p.host import basic_host as bh
x509s = ("cryptography.x509", "cryptography.x509.oid")
before = [n for n in x509s if n in deferred.deferred_now()]
chain = bh.x509.load_pem_x509_certificates({pem!r}.encode())
san = chain[0].extensions.get_extension_for_oid(bh.ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
print(json.dumps({{
    "before": before,
    "dns": san.get_values_for_type(bh.x509.DNSName),
    "left": [n for n in x509s if n in deferred.deferred_now()],
    "same": [
        sys.modules[m].ExtensionOID is sys.modules[x509s[1]].ExtensionOID
        for m in ("cryptography.x509", "cryptography.x509.extensions")
    ],
}}))
"""
    )
    assert got == {
        "before": ["cryptography.x509", "cryptography.x509.oid"],
        "dns": ["a.libp2p.direct"],
        "left": [],
        "same": [True, True],  # the package's own names are the real ones
    }
