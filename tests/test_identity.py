"""Identities: key files 0600, refused when too open, peer id from the same key."""

import os

import pytest

from node.clock import HybridClock, hlc_millis
from node.errors import LocalError
from node.identity import generate, read_key, write_key


def test_key_file_roundtrip_and_mode(tmp_path):
    ident = generate()
    path = tmp_path / "node.key"
    write_key(path, ident)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert read_key(path) == ident


def test_refuses_readable_key(tmp_path):
    path = tmp_path / "node.key"
    write_key(path, generate())
    os.chmod(path, 0o644)
    with pytest.raises(LocalError, match=f"chmod 600 {path}"):
        read_key(path)


def test_refuses_overwrite(tmp_path):
    path = tmp_path / "node.key"
    write_key(path, generate())
    with pytest.raises(LocalError, match="refusing to overwrite"):
        write_key(path, generate())


def test_missing_and_garbage(tmp_path):
    with pytest.raises(LocalError, match="no key file"):
        read_key(tmp_path / "nope")
    bad = tmp_path / "bad.key"
    bad.write_text("hello")
    bad.chmod(0o600)
    with pytest.raises(LocalError, match="not a PEM private key"):
        read_key(bad)


def test_peer_id_matches_libp2p():
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID

    ident = generate()
    kp = create_new_key_pair(ident.seed)
    assert kp.public_key.to_bytes() == ident.public
    assert ID.from_pubkey(kp.public_key).to_base58() == ident.peer_id


def test_sign_verifies_with_other_library():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    ident = generate()
    Ed25519PublicKey.from_public_bytes(ident.public).verify(ident.sign(b"m"), b"m")


def test_hybrid_clock():
    now = [1000]
    clock = HybridClock(lambda: now[0])
    a, b = clock.tick(), clock.tick()
    assert b > a
    assert hlc_millis(a) == 1000
    clock.observe((5000 << 16) + 7)
    c = clock.tick()
    assert c > (5000 << 16) + 7
    now[0] = 9000
    assert hlc_millis(clock.tick()) == 9000


def test_the_key_inside_a_peer_id():
    from node.keys import peer_id_of, public_of_peer_id

    ident = generate()
    assert public_of_peer_id(peer_id_of(ident.public)) == ident.public
    assert public_of_peer_id(ident.peer_id) == ident.public
    for other in ("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", "", "0OIl", "12D3KooW"):
        assert public_of_peer_id(other) is None
