"""SQLite persistence of the replica: the records per partition, evidence, metadata.

WAL mode. A durable save (a local write) commits with `synchronous=FULL`: when `save`
returns, the transaction is on disk and survives `kill -9` and a power cut. Records
from peers are saved with `synchronous=NORMAL`: they survive a crash of the process
(the WAL is written before `save` returns) and, after a power cut, peers send them
again. Records are stored only after the replica verified them, so `load_into`
rebuilds the replica without verifying again.

The database file (and its -wal and -shm files, which SQLite creates with the same
mode) is 0600. One connection, used by one thread at a time (the daemon runs every
call in its single store worker).
"""

from __future__ import annotations

import gc
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from node import model
from node.crdt.record import Record, StoredRecordError, load_stored, load_trusted
from node.crdt.replica import Evidence, Replica
from node.errors import StoreUnreadable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    part   TEXT NOT NULL,
    origin BLOB NOT NULL,
    kind   TEXT NOT NULL,
    key    TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    rid    BLOB NOT NULL,
    raw    BLOB NOT NULL,
    PRIMARY KEY (part, origin, kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS evidence (
    part  TEXT NOT NULL,
    origin BLOB NOT NULL,
    rid_a BLOB NOT NULL,
    rid_b BLOB NOT NULL,
    raw_a BLOB NOT NULL,
    raw_b BLOB NOT NULL,
    PRIMARY KEY (part, origin)
) WITHOUT ROWID;
"""
SCHEMA_VERSION = 2
_REPAIR = (
    "Stop the node, then restore a backup (allmende restore FILE) or move the database "
    "aside (mv {path} {path}.damaged) and start again: peers send their records anew"
)

# A newer record of a slot wins in the table as in the replica, so saves may land in
# any order; the smaller evidence pair wins likewise.
_UPSERT_RECORD = (
    "INSERT INTO records(part, origin, kind, key, seq, rid, raw) VALUES (?,?,?,?,?,?,?) "
    "ON CONFLICT(part, origin, kind, key) DO UPDATE SET seq=excluded.seq, rid=excluded.rid, "
    "raw=excluded.raw WHERE excluded.seq > records.seq "
    "OR (excluded.seq = records.seq AND excluded.rid < records.rid)"
)
_UPSERT_EVIDENCE = (
    "INSERT INTO evidence(part, origin, rid_a, rid_b, raw_a, raw_b) VALUES (?,?,?,?,?,?) "
    "ON CONFLICT(part, origin) DO UPDATE SET rid_a=excluded.rid_a, rid_b=excluded.rid_b, "
    "raw_a=excluded.raw_a, raw_b=excluded.raw_b "
    "WHERE (excluded.rid_a, excluded.rid_b) < (evidence.rid_a, evidence.rid_b)"
)


class Store:
    """The node's database file.

    Args:
        path: the SQLite file (created 0600 if missing).

    Raises:
        StoreUnreadable: the file is not a database of this program, is of another
            format, is damaged or is locked.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            if not path.exists():
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            os.chmod(path, 0o600)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master")}
            old = "meta" in tables and self._meta_row("schema")
            version = SCHEMA_VERSION if not old else int(old)
            if version == SCHEMA_VERSION:
                self._db.executescript(_SCHEMA)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise StoreUnreadable(
                f"cannot open database {path}: {exc}. {_REPAIR.format(path=path)}"
            ) from None
        if version > SCHEMA_VERSION:
            self._db.close()
            raise StoreUnreadable(
                f"{path} was written by a newer version of Allmende (store format {version}; "
                f"this one reads format {SCHEMA_VERSION}): upgrade it (see docs/operating.md, "
                "Upgrading), or restore a backup this version made with: allmende restore FILE"
            )
        if version != SCHEMA_VERSION:
            self._db.close()
            raise StoreUnreadable(
                f"{path} holds records in format {version}; this version of Allmende reads "
                f"format {SCHEMA_VERSION} (record ids are now hashes of the record). Your key "
                f"and config stay valid: move the database aside (mv {path} {path}.v{version}) "
                "and start again; peers send their records anew, and this node's own needs, "
                "capacities and members must be posted again."
            )
        self.set_meta("schema", SCHEMA_VERSION)

    def close(self) -> None:
        self._db.close()

    def pragma(self, name: str) -> int:
        """The value of an integer PRAGMA (tests assert the durability settings)."""
        return int(self._db.execute(f"PRAGMA {name}").fetchone()[0])

    def save(
        self,
        records: Sequence[Record],
        *,
        evidence: Sequence[Evidence] = (),
        meta: Mapping[str, int] | None = None,
        durable: bool = True,
    ) -> None:
        """Store records (and evidence and metadata) in one transaction.

        Args:
            durable: fsync before returning (local writes); else survive a process
                crash but perhaps not a power cut (records peers hold too).
        """
        rows = [
            (model.partition_of(r.scope), r.origin, r.kind, r.key, r.seq, r.rid, r.raw)
            for r in records
        ]
        ev_rows = []
        for a, b in evidence:
            for part in {model.partition_of(a.scope), model.partition_of(b.scope)}:
                ev_rows.append((part, a.origin, a.rid, b.rid, a.raw, b.raw))
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        with self._transaction():
            self._db.executemany(_UPSERT_RECORD, rows)
            if ev_rows:
                self._db.executemany(_UPSERT_EVIDENCE, ev_rows)
            for name, value in (meta or {}).items():
                self._set_meta(name, value)

    def load_into(self, replica: Replica, *, resident: bool = False) -> int:
        """Merge every stored record and evidence pair into `replica` without
        re-verifying; returns the number of records.

        Args:
            resident: the replica lives as long as the process (the daemon's): what
                is loaded is frozen out of the collector's reach (`gc.freeze`, after
                one pass over what was there before) instead of walked by a full
                pass at the end, which the daemon would freeze right after anyway.

        Raises:
            StoreUnreadable: the database is damaged.
        """
        try:
            with _collector_paused(resident):
                # The rows come in primary-key order, by (partition, origin): the
                # replica puts each origin's records of a partition in at once.
                # Their ids are read as stored (computed from the bytes when saved).
                cursor = self._db.execute("SELECT rid, raw FROM records")
                n = replica.load_trusted(load_stored(cursor))
                for raw_a, raw_b in self._db.execute("SELECT raw_a, raw_b FROM evidence"):
                    a, b = load_trusted([raw_a, raw_b])
                    replica.add_evidence(a, b)
        except (sqlite3.DatabaseError, StoredRecordError) as exc:
            raise StoreUnreadable(
                f"database {self.path} is damaged: {exc}. {_REPAIR.format(path=self.path)}"
            ) from None
        replica.take_new_evidence()  # loaded, not new
        return n

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM records").fetchone()[0])

    def get_meta(self, name: str, default: int = 0) -> int:
        value = self._meta_row(name)
        return default if value is None else int(value)

    def _meta_row(self, name: str) -> int | None:
        row = self._db.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def set_meta(self, name: str, value: int) -> None:
        with self._transaction():
            self._set_meta(name, value)

    def _set_meta(self, name: str, value: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta(name, value) VALUES (?,?)", (name, value))

    def _transaction(self) -> _Tx:
        return _Tx(self._db)


@contextmanager
def _collector_paused(freeze: bool = False) -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a store loads.

    Loading builds hundreds of thousands of records (tuples and body maps that form
    no cycles), and each of the collector's passes over the growing heap walks every
    one loaded so far to find nothing: a third of the load's CPU. Reference counting
    still frees everything. At the end one full pass takes the loaded objects to the
    oldest generation at once (and stops tracking the records, which hold nothing it
    tracks): left young, every pass of the next seconds would walk them again.

    With `freeze`, the heap as it was is collected first (small at a start) and the
    loaded objects are then frozen (`gc.freeze`): no pass walks them, now or later.
    Only for objects kept for the life of the process: a cycle through a frozen
    object is never collected.
    """
    enabled = gc.isenabled()
    if freeze and enabled:
        gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if freeze:
                gc.freeze()
            else:
                gc.collect()
            gc.enable()


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
