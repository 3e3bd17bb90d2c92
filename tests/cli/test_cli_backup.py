"""Backups and upgrades (issue 17, item 5): `allmende backup` while the daemon writes,
`allmende restore` without seq reuse, `--version`, a store of another format."""

from __future__ import annotations

import sqlite3
import stat
import threading
from importlib.metadata import version

import pytest
from cli_helpers import Node, invoke, running

from node.config import DataDir
from node.errors import LocalError
from node.store import SCHEMA_VERSION, Store


def own_seqs(db) -> list[int]:
    with sqlite3.connect(db) as c:
        (me,) = c.execute("SELECT origin FROM records WHERE kind='node' AND key='self'").fetchone()
        return [s for (s,) in c.execute("SELECT seq FROM records WHERE origin=?", (me,))]


def test_version_names_the_program_and_store_format(tmp_path):
    r = invoke(tmp_path, "--version")
    assert r.exit_code == 0
    assert r.stdout == f"allmende, version {version('allmende')} (store format {SCHEMA_VERSION})\n"


def test_backup_refuses_an_existing_file_and_a_missing_node(tmp_path):
    r = invoke(tmp_path / "none", "backup", str(tmp_path / "b.db"))
    assert r.exit_code == 1
    assert "nothing to back up" in r.stderr
    d = tmp_path / "n"
    assert invoke(d, "init", "--name", "N", "--scope", "eu/x/y/z").exit_code == 0
    Store(DataDir(d).db).close()
    (tmp_path / "taken").write_text("mine")
    r = invoke(d, "backup", str(tmp_path / "taken"))
    assert r.exit_code == 1
    assert (tmp_path / "taken").read_text() == "mine"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a database at all" * 100, "not an allmende backup"),
        (None, "not an allmende backup (made by allmende backup)"),  # a bare store
    ],
)
def test_restore_refuses_what_is_not_a_backup_and_changes_nothing(tmp_path, content, message):
    f = tmp_path / "x.db"
    if content is None:
        Store(f).close()
    else:
        f.write_bytes(content)
    d = tmp_path / "n"
    r = invoke(d, "restore", str(f))
    assert r.exit_code == 1
    assert message in r.stderr
    assert not DataDir(d).initialised()


def test_store_of_a_newer_format_is_refused_naming_the_command(tmp_path):
    db = tmp_path / "allmende.db"
    Store(db).set_meta("schema", SCHEMA_VERSION + 1)
    with pytest.raises(LocalError, match="allmende restore FILE") as err:
        Store(db)
    assert f"store format {SCHEMA_VERSION + 1}" in str(err.value)


def test_store_of_an_older_format_is_refused_naming_the_command(tmp_path):
    db = tmp_path / "allmende.db"
    Store(db).set_meta("schema", 1)
    with pytest.raises(LocalError, match=rf"mv {db} {db}\.v1"):
        Store(db)


@pytest.mark.slow
def test_backup_while_writing_then_restore_without_seq_reuse(tmp_path):
    node = Node(tmp_path / "a", "a", "eu/de/berlin/a").init()
    dd = DataDir(node.data_dir)
    stop = threading.Event()
    written = []

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            node.call("post", kind="need", item="potatoes", qty=str(i), unit="kg", period="2027")
            written.append(i)

    with running(node):
        t = threading.Thread(target=writer)
        t.start()
        try:
            while len(written) < 5:
                stop.wait(0.05)
            r = node.cli("backup", str(tmp_path / "b1.db"))
        finally:
            stop.set()
            t.join()
        assert r.exit_code == 0, r.output
        assert r.stdout.startswith("Backed up node ")
        # restore refuses while the daemon runs, and changes nothing
        before = dd.db.stat().st_mtime_ns
        r = node.cli("restore", str(tmp_path / "b1.db"))
        assert r.exit_code == 1
        assert "another allmende daemon" in r.stderr
        assert dd.db.stat().st_mtime_ns == before
        used = max(own_seqs(dd.db))
    b1 = tmp_path / "b1.db"
    assert stat.S_IMODE(b1.stat().st_mode) == 0o600
    with sqlite3.connect(b1) as c:
        assert c.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        in_backup = c.execute("SELECT count(*) FROM records").fetchone()[0]
    # into an empty data dir: key, config and database
    fresh = Node(tmp_path / "fresh", "fresh", node.scope, peer_id=node.peer_id)
    r = invoke(fresh.data_dir, "restore", str(b1))
    assert r.exit_code == 0, r.output
    assert DataDir(fresh.data_dir).key.read_bytes() == dd.key.read_bytes()
    # over the same node: its database moved aside
    r = invoke(node.data_dir, "restore", str(b1))
    assert r.exit_code == 0, r.output
    assert (node.data_dir / "before-restore-1" / "allmende.db").exists()
    with running(node):
        status = node.call("status")
        assert status["records"] == in_backup
        node.call("post", kind="need", item="potatoes", qty="1", unit="kg", period="2027")
    assert max(own_seqs(dd.db)) > used  # never a seq the node used before the restore
    # another node's backup is refused over this one
    other = Node(tmp_path / "o", "o", "eu/de/berlin/o").init()
    Store(DataDir(other.data_dir).db).close()
    assert invoke(other.data_dir, "backup", str(tmp_path / "o.db")).exit_code == 0
    r = invoke(node.data_dir, "restore", str(tmp_path / "o.db"))
    assert r.exit_code == 1
    assert "holds another node" in r.stderr


def test_restore_keeps_the_higher_seq_of_the_replaced_database(tmp_path):
    d = tmp_path / "n"
    assert invoke(d, "init", "--name", "N", "--scope", "eu/x/y/z").exit_code == 0
    dd = DataDir(d)
    s = Store(dd.db)
    s.set_meta("seq", 100)
    s.close()
    assert invoke(d, "backup", str(tmp_path / "b.db")).exit_code == 0
    s = Store(dd.db)
    s.set_meta("seq", 5000)  # written after the backup
    s.close()
    assert invoke(d, "restore", str(tmp_path / "b.db")).exit_code == 0
    s = Store(dd.db)
    assert s.get_meta("seq") == 5000
    s.close()
