"""Dialable addresses from wildcard listen addresses (issue 17, item 1)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from node.net.dialable import dialable, interface_ips

P = "12D3KooWHFYdJ3bQf1jaUQRKJ1ZQ43TPzcxG2nLxd1LV46mhtLHL"
IPS = ["127.0.0.1", "::1", "192.0.2.2", "fd00::2", "fe80::1", "not an ip"]


def test_wildcards_become_interface_addresses_public_first_loopback_last():
    got = dialable(
        ["/ip4/0.0.0.0/tcp/7946", f"/ip6/::/tcp/7946/p2p/{P}"],
        IPS,
        ["/ip4/203.0.113.5/tcp/7946"],
        P,
    )
    assert got == [
        f"/ip4/203.0.113.5/tcp/7946/p2p/{P}",
        f"/ip4/192.0.2.2/tcp/7946/p2p/{P}",
        f"/ip6/fd00::2/tcp/7946/p2p/{P}",
        f"/ip4/127.0.0.1/tcp/7946/p2p/{P}",
        f"/ip6/::1/tcp/7946/p2p/{P}",
    ]


def test_a_specific_listen_address_stays_and_nothing_repeats():
    got = dialable([f"/ip4/127.0.0.1/tcp/1/p2p/{P}"], IPS, [f"/ip4/127.0.0.1/tcp/1/p2p/{P}"], P)
    assert got == [f"/ip4/127.0.0.1/tcp/1/p2p/{P}"]


def test_no_interfaces_no_wildcard_addresses():
    assert dialable(["/ip4/0.0.0.0/tcp/7946"], [], [], P) == []


@given(st.lists(st.ip_addresses().map(str), max_size=8))
def test_never_a_wildcard_or_link_local_and_always_the_peer_id(ips):
    for addr in dialable(["/ip4/0.0.0.0/tcp/1", "/ip6/::/tcp/1"], ips, [], P):
        assert "/ip4/0.0.0.0/" not in addr
        assert "/ip6/::/" not in addr
        assert "/ip6/fe80" not in addr
        assert addr.endswith(f"/p2p/{P}")


def test_this_machine_has_a_loopback_interface():
    assert "127.0.0.1" in interface_ips()


def test_announce_addresses_round_trip_in_config_toml():
    from node.config import Config

    c = Config(name="n", announce=("/ip4/203.0.113.5/tcp/7946",))
    text = c.to_toml()
    assert 'announce = ["/ip4/203.0.113.5/tcp/7946"]' in text
    assert Config.from_toml(text).announce == c.announce
    assert "announce" not in Config(name="n").to_toml()  # absent unless set
