"""`allmende federation|invite|endorse|admission` and `init --invite/--charter/--key`:
what works offline, and every refusal with its message, exit 1 and nothing written."""

from __future__ import annotations

import base64

import msgpack
import pytest
from cli_helpers import invoke

from node.config import Config, DataDir
from node.governance.admission import INVITE_PREFIX, Charter, InviteCode
from node.identity import generate, write_key
from node.keys import peer_id_of


def files(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())} if d.exists() else None


def _init(d, *extra):
    return invoke(d, "init", "--name", "n", "--scope", "eu/de/berlin/n", "--no-mdns", *extra)


def test_a_node_founds_its_own_federation_by_default(tmp_path):
    d = tmp_path / "n"
    r = _init(d)
    assert r.exit_code == 0, r.output
    identity, config = DataDir(d).load()
    assert config.charter["founders"] == [identity.public.hex()]
    assert f"federation: {config.federation}" in r.stdout


def test_federation_create_then_join_makes_a_founder(tmp_path):
    keys = [generate() for _ in range(3)]
    charter = tmp_path / "charter.toml"
    founders = [a for k in keys for a in ("--founder", k.public.hex())]
    r = invoke(
        tmp_path / "x", "federation", "create", "--name", "Kiez", *founders, "--out", str(charter)
    )
    assert r.exit_code == 0, r.output
    fid = Charter.of("Kiez", [k.public for k in keys]).id
    assert f"federation {fid}" in r.stdout
    key_file = tmp_path / "k.pem"
    write_key(key_file, keys[1])
    d = tmp_path / "n"
    assert _init(d, "--key", str(key_file), "--charter", str(charter)).exit_code == 0
    identity, config = DataDir(d).load()
    assert identity == keys[1]
    assert config.federation == fid
    # an existing node can join another federation too, while it is stopped
    other = tmp_path / "o"
    assert _init(other).exit_code == 0
    r = invoke(other, "federation", "join", str(charter))
    assert r.exit_code == 0, r.output
    assert "it is no founder" in r.stdout
    assert DataDir(other).load()[1].federation == fid


def test_init_with_an_invite_code(tmp_path):
    inviter = generate()
    charter = Charter.of("Kiez", [inviter.public])
    address = f"/ip4/127.0.0.1/tcp/7946/p2p/{peer_id_of(inviter.public)}"
    code = InviteCode(charter, address, f"{inviter.public.hex()}.abcdefgh", b"s" * 32).encode()
    d = tmp_path / "n"
    r = _init(d, "--invite", code)
    assert r.exit_code == 0, r.output
    _, config = DataDir(d).load()
    assert config.federation == charter.id
    assert address in config.bootstrap
    assert config.application == (f"{inviter.public.hex()}.abcdefgh", (b"s" * 32).hex())


def _bad_code(fields) -> str:
    data = msgpack.packb(fields, use_bin_type=True)
    return INVITE_PREFIX + base64.urlsafe_b64encode(data).decode().rstrip("=")


def _forged_address_code() -> str:
    inviter, other = generate(), generate()
    charter = Charter.of("Kiez", [inviter.public]).body()
    address = f"/ip4/127.0.0.1/tcp/7946/p2p/{peer_id_of(other.public)}"
    return _bad_code([1, charter, address, f"{inviter.public.hex()}.abcdefgh", b"s" * 32])


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("hello", "not an invite code"),
        (INVITE_PREFIX + "!!!", "damaged"),
        (INVITE_PREFIX + "x" * 9000, "not an invite code"),
        (_bad_code([2, {}, "", "", b""]), "damaged or of another version"),
        (_bad_code([1, {"name": "x"}, "/ip4/1.2.3.4", "a.b", b"s" * 32]), "not a valid charter"),
        (_forged_address_code(), "address is not the inviter's"),
    ],
    ids=["text", "base64", "long", "version", "charter", "address"],
)
def test_init_refuses_a_bad_invite_and_writes_nothing(tmp_path, code, message):
    d = tmp_path / "n"
    r = _init(d, "--invite", code)
    assert r.exit_code == 1
    assert message in r.stderr
    assert files(d) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["federation", "create", "--name", "x", "--founder", "zz", "--out", "c.toml"], "64 hex"),
        (
            ["federation", "create", "--name", "", "--founder", "ab" * 32, "--out", "c.toml"],
            "name is required",
        ),
        (
            ["federation", "create", "--name", "x", "--founder", "ab" * 32, "--cap", "0"],
            "Missing option '--out'",
        ),
    ],
)
def test_federation_create_refusals(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    r = invoke(tmp_path / "x", *args)
    assert r.exit_code in (1, 2)
    assert message in r.stderr
    assert not (tmp_path / "c.toml").exists()


def test_federation_join_refuses_what_is_not_a_charter(tmp_path):
    d = tmp_path / "n"
    assert _init(d).exit_code == 0
    before = files(d)
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nfounders = ["nothex"]\nrule = { cap = 3, num = 1, den = 2 }\n')
    r = invoke(d, "federation", "join", str(bad))
    assert r.exit_code == 1
    assert "not a valid charter" in r.stderr
    assert files(d) == before


def test_init_may_replace_only_what_the_first_run_made(tmp_path):
    d = tmp_path / "n"
    dd = DataDir(d)
    identity = dd.init(Config(name="host", auto=True))
    r = _init(d)
    assert r.exit_code == 0, r.output
    again, config = dd.load()
    assert again == identity  # the key stays
    assert (config.name, config.scope, config.auto) == ("n", "eu/de/berlin/n", False)
    r = _init(d)  # made by init now: never replaced
    assert r.exit_code == 1
    assert "refusing to overwrite" in r.stderr
