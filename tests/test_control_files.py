"""The data dir's files are the owner's alone, whatever the umask."""

import os
import stat
from dataclasses import replace

import pytest

from node.config import Config, DataDir


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)  # the common default: files 0644
    yield
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.usefixtures("loose_umask")
def test_config_and_key_are_private_after_init_and_write_config(tmp_path):
    dd = DataDir(tmp_path / "node")
    config = Config(name="K", scope="eu/de/x")
    dd.init(config)
    assert _mode(dd.root) == 0o700
    assert _mode(dd.key) == 0o600
    assert _mode(dd.config) == 0o600

    # A leftover temporary file from a crash keeps its mode unless it is reset.
    tmp = dd.config.with_suffix(".tmp")
    tmp.write_text("stale")
    os.chmod(tmp, 0o644)
    dd.write_config(replace(config, mdns=False))
    assert _mode(dd.config) == 0o600
    assert _mode(dd.key) == 0o600
    assert not tmp.exists()
    assert dd.load()[1].mdns is False


@pytest.mark.usefixtures("loose_umask")
def test_the_peer_book_is_private(tmp_path):
    from node.net import PeerBook

    book = PeerBook(tmp_path)
    book.add("12D3KooWPeer", ["/ip4/127.0.0.1/tcp/7946"])
    book.save()
    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == ["known-peers.json"]
    assert _mode(files[0]) == 0o600
