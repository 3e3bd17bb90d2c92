"""SQLite persistence of the replica: the winning record per slot, and small metadata.

WAL mode with `synchronous=FULL`: a transaction that `save` returned from is on disk
and survives `kill -9` (and a power cut). Records are stored only after the replica
verified them, so `load_into` rebuilds the replica without verifying again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from node.crdt.record import Record, load_trusted
from node.crdt.replica import Replica
from node.errors import LocalError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    origin BLOB NOT NULL,
    kind   TEXT NOT NULL,
    key    TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    raw    BLOB NOT NULL,
    PRIMARY KEY (origin, kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS flagged (
    origin BLOB PRIMARY KEY, rid_a BLOB NOT NULL, rid_b BLOB NOT NULL
) WITHOUT ROWID;
"""
SCHEMA_VERSION = 1


class Store:
    """The node's database file.

    Args:
        path: the SQLite file (created if missing).

    Raises:
        LocalError: the file is not a database of this program or is locked.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
            version = self.get_meta("schema", SCHEMA_VERSION)
        except sqlite3.DatabaseError as exc:
            raise LocalError(f"cannot open database {path}: {exc}") from None
        if version != SCHEMA_VERSION:
            raise LocalError(f"{path} has schema {version}; this version reads {SCHEMA_VERSION}")
        self.set_meta("schema", SCHEMA_VERSION)

    def close(self) -> None:
        self._db.close()

    def save(self, records: Iterable[Record], meta: dict[str, int] | None = None) -> None:
        """Store winning records (and metadata) in one durable transaction."""
        rows = [(r.origin, r.kind, r.key, r.seq, r.raw) for r in records]
        with self._transaction():
            self._db.executemany(
                "INSERT INTO records(origin, kind, key, seq, raw) VALUES (?,?,?,?,?) "
                "ON CONFLICT(origin, kind, key) DO UPDATE SET seq=excluded.seq, raw=excluded.raw",
                rows,
            )
            for name, value in (meta or {}).items():
                self._set_meta(name, value)

    def save_flag(self, origin: bytes, evidence: tuple[bytes, bytes]) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO flagged(origin, rid_a, rid_b) VALUES (?,?,?)",
                (origin, *evidence),
            )

    def load_into(self, replica: Replica) -> int:
        """Merge every stored record into `replica` without re-verifying; returns the count."""
        cursor = self._db.execute("SELECT raw FROM records")
        n = replica.load_trusted(load_trusted(raw for (raw,) in cursor))
        for origin, a, b in self._db.execute("SELECT origin, rid_a, rid_b FROM flagged"):
            replica.flagged[origin] = (a, b)
        return n

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM records").fetchone()[0])

    def get_meta(self, name: str, default: int = 0) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return default if row is None else int(row[0])

    def set_meta(self, name: str, value: int) -> None:
        with self._transaction():
            self._set_meta(name, value)

    def _set_meta(self, name: str, value: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta(name, value) VALUES (?,?)", (name, value))

    def _transaction(self) -> _Tx:
        return _Tx(self._db)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
