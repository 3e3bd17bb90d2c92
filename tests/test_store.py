"""SQLite persistence: round trip, no re-verification on load, durability under SIGKILL."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from factories import Author, identities

from node.crdt import record as record_mod
from node.crdt.replica import Replica
from node.errors import LocalError
from node.store import Store

ROOT = Path(__file__).resolve().parents[1]


def test_roundtrip(tmp_path):
    a = Author(identities(1)[0])
    recs = [a.need(f"n{i}", qty=str(i + 1)) for i in range(20)] + [a.write("need", "n3", None)]
    src = Replica()
    for r in recs:
        src.receive(r.raw)
    store = Store(tmp_path / "db.sqlite")
    store.save(src.records(), meta={"seq": a.seq})
    store.close()
    again = Store(tmp_path / "db.sqlite")
    dst = Replica()
    assert again.load_into(dst) == 20
    assert dst.digest() == src.digest()
    assert again.get_meta("seq") == a.seq
    again.close()


def test_load_does_not_verify(tmp_path, monkeypatch):
    a = Author(identities(1)[0])
    store = Store(tmp_path / "db.sqlite")
    store.save([a.need("n1"), a.need("n2")])

    def boom(_):
        raise AssertionError("verified again")

    monkeypatch.setattr(record_mod, "verify_record", boom)
    monkeypatch.setattr("node.crdt.replica.verify_record", boom)
    replica = Replica()
    assert store.load_into(replica) == 2


def test_evidence_persists_and_flags_again(tmp_path):
    liar = Author(identities(1)[0])
    liar.seq = 5
    one = liar.need("x", qty="1")
    liar.seq = 5
    two = liar.need("x", qty="2")
    store = Store(tmp_path / "db.sqlite")
    store.save([], evidence=[(one, two) if one.rid < two.rid else (two, one)])
    store.close()
    replica = Replica()
    Store(tmp_path / "db.sqlite").load_into(replica)
    assert replica.flagged == {liar.origin: tuple(sorted([one.rid, two.rid]))}
    assert len(replica) == 0  # evidence is not a held record


def test_saves_in_any_order_keep_the_newest(tmp_path):
    a = Author(identities(1)[0])
    old, new = a.need("n1", qty="1"), a.need("n1", qty="2")
    store = Store(tmp_path / "db.sqlite")
    store.save([new], durable=False)
    store.save([old], durable=False)  # a save that lost the race must not win
    replica = Replica()
    store.load_into(replica)
    assert replica.get(a.origin, "need", "n1") == new


def test_durability_pragmas(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    mode = store._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    store.save([Author(identities(1)[0]).need("n1")], durable=True)
    assert store.pragma("synchronous") == 2  # FULL: fsynced at commit
    store.save([Author(identities(1)[0]).need("n2")], durable=False)
    assert store.pragma("synchronous") == 1  # NORMAL: peers' records
    store.close()


def test_database_files_are_private(tmp_path):
    old = os.umask(0o022)
    try:
        store = Store(tmp_path / "db.sqlite")
        store.save([Author(identities(1)[0]).need("n1")])
    finally:
        os.umask(old)
    for name in ("db.sqlite", "db.sqlite-wal", "db.sqlite-shm"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name
    store.close()


def test_old_format_refused_with_what_to_do(tmp_path):
    import sqlite3

    db = tmp_path / "db.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value)")
    con.execute("INSERT INTO meta VALUES ('schema', 1)")
    con.commit()
    con.close()
    with pytest.raises(LocalError, match=r"format 1.*mv .*db.sqlite.v1"):
        Store(db)
    assert sqlite3.connect(db).execute("SELECT value FROM meta").fetchone() == (1,)


def test_not_a_database(tmp_path):
    bad = tmp_path / "db.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LocalError, match="cannot open database"):
        Store(bad)


WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from factories import Author, identities
    from node.store import Store
    store = Store(__import__("pathlib").Path({db!r}))
    a = Author(identities(1)[0])
    i = 0
    while True:
        i += 1
        store.save([a.need(f"n{{i}}", qty=str(i))], meta={{"seq": a.seq}})
        print(i, flush=True)  # acknowledged only after save() returned
    """
)


def test_acknowledged_writes_survive_sigkill(tmp_path):
    db = tmp_path / "db.sqlite"
    code = WRITER.format(tests=str(ROOT / "tests"), db=str(db))
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=ROOT, text=True
    )
    acked = 0
    assert proc.stdout is not None
    for line in proc.stdout:
        acked = int(line)
        if acked >= 200:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    store = Store(db)
    replica = Replica()
    store.load_into(replica)
    seq = store.get_meta("seq")
    store.close()
    author = identities(1)[0].public
    for i in range(1, acked + 1):
        assert replica.get(author, "need", f"n{i}") is not None, f"acknowledged n{i} lost"
    assert seq >= acked
