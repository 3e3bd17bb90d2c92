"""Bans outlast a restart (issue 17, item 5)."""

from __future__ import annotations

import json

import pytest
import trio
from libp2p.peer.id import ID
from net_helpers import FakeHandler, config, seed

from node.net import NetService
from node.net.bans import BanFile

P1 = "12D3KooWHFYdJ3bQf1jaUQRKJ1ZQ43TPzcxG2nLxd1LV46mhtLHL"


class Wall:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_ban_file_keeps_what_is_left_of_a_ban(tmp_path):
    wall = Wall(1000.0)
    BanFile(tmp_path, wall).save({P1: 60.0, "other": 5.0})
    wall.t = 1010.0
    assert BanFile(tmp_path, wall).load() == {P1: pytest.approx(50.0)}  # "other" is over


def test_unreadable_ban_file_means_no_bans(tmp_path):
    (tmp_path / "bans.json").write_text("{not json")
    assert BanFile(tmp_path).load() == {}
    (tmp_path / "bans.json").write_text(json.dumps({"bans": {"x": "soon"}}))
    assert BanFile(tmp_path).load() == {}


def test_memory_only_without_a_directory():
    BanFile(None).save({P1: 10.0})
    assert BanFile(None).load() == {}


@pytest.mark.slow
async def test_a_banned_peer_is_still_banned_after_a_restart(tmp_path):
    def service() -> NetService:
        return NetService(seed("B"), FakeHandler("B"), config(data_dir=tmp_path))

    first = service()
    async with trio.open_nursery() as nursery:
        await nursery.start(first.run)
        first._ban(ID.from_base58(P1))
        assert first.is_banned(P1)
        nursery.cancel_scope.cancel()
    second = service()
    assert not second.is_banned(P1)  # nothing is loaded before it runs
    async with trio.open_nursery() as nursery:
        await nursery.start(second.run)
        assert second.is_banned(P1)
        assert second.statistics().banned == 1
        nursery.cancel_scope.cancel()
