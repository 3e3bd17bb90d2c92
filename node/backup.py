"""`allmende backup` and `allmende restore`: one file holding a node's database, key
and config, taken while the daemon runs.

The database is copied with SQLite's online backup API in a single step, which
reads one consistent snapshot (writes the daemon commits meanwhile wait for the next
backup; none is half in it). The copy is a plain SQLite file of the store's format
with one more table, ``backup_files``, holding ``node.key`` and ``config.toml``;
so the file is as secret as the key (mode 0600).

A restore never reuses a seq: this node's seq and clock in the restored database are
set to the highest of the backup's and the replaced database's, and after every
start the node's first write takes a seq derived from the clock anyway
(`node.core.NodeCore`), above any it can have used before. The replaced database is
moved aside, not deleted.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from node.config import CONFIG_FILE, KEY_FILE, DataDir
from node.errors import LocalError
from node.files import fsync_dir
from node.identity import read_key
from node.store import SCHEMA_VERSION

_FILES = (KEY_FILE, CONFIG_FILE)


@dataclass(frozen=True)
class BackupInfo:
    """What a backup holds: its records, this node's seq, the node id (hex)."""

    path: Path
    records: int
    seq: int
    node_id: str


def backup(dd: DataDir, dest: Path) -> BackupInfo:
    """Copy the node's database, key and config into the new file `dest`.

    Raises:
        LocalError: no node here, `dest` exists, or the database cannot be read.
    """
    if not dd.initialised() or not dd.db.exists():
        raise LocalError(f"no node database in {dd.root}; nothing to back up")
    if dest.exists():
        raise LocalError(f"{dest} exists already; choose a new file name")
    tmp = dest.with_name(dest.name + ".partial")
    tmp.unlink(missing_ok=True)
    os.close(os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
    try:
        src = sqlite3.connect(dd.db, timeout=30)
        out = sqlite3.connect(tmp)
        try:
            src.backup(out)  # pages=-1: the whole database from one read snapshot
            out.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            out.execute("CREATE TABLE backup_files (name TEXT PRIMARY KEY, data BLOB NOT NULL)")
            for name in _FILES:
                out.execute(
                    "INSERT INTO backup_files VALUES (?, ?)", (name, (dd.root / name).read_bytes())
                )
            out.commit()
            info = _describe(out, dest)
        finally:
            out.close()
            src.close()
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except (sqlite3.Error, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise LocalError(f"backup failed, nothing was written: {exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return info


def _describe(db: sqlite3.Connection, path: Path) -> BackupInfo:
    files = dict(db.execute("SELECT name, data FROM backup_files"))
    key_pem = files[KEY_FILE]
    seq = db.execute("SELECT value FROM meta WHERE name='seq'").fetchone()
    records = db.execute("SELECT count(*) FROM records").fetchone()[0]
    return BackupInfo(path, int(records), int(seq[0]) if seq else 0, _node_id(key_pem))


def _node_id(pem: bytes) -> str:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise LocalError(f"the backup's node key is not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LocalError("the backup's node key is not Ed25519")
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def check_backup(path: Path) -> BackupInfo:
    """Open `path` read-only and check it is a whole backup of this store format.

    Raises:
        LocalError: not a file, not a backup, damaged, or of another format.
    """
    if not path.is_file():
        raise LocalError(f"{path} is not a file")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            ok = db.execute("PRAGMA integrity_check").fetchone()[0]
            if ok != "ok":
                raise LocalError(f"{path} is damaged ({ok}); use another backup")
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
            if not {"records", "meta", "backup_files"} <= tables:
                raise LocalError(f"{path} is not an allmende backup (made by allmende backup)")
            row = db.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
            version = int(row[0]) if row else 0
            if version != SCHEMA_VERSION:
                raise LocalError(
                    f"{path} holds store format {version}; this version of Allmende "
                    f"reads format {SCHEMA_VERSION}"
                )
            names = {r[0] for r in db.execute("SELECT name FROM backup_files")}
            if not set(_FILES) <= names:
                raise LocalError(f"{path} lacks {', '.join(sorted(set(_FILES) - names))}")
            return _describe(db, path)
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise LocalError(f"{path} is not an allmende backup: {exc}") from None


def restore(dd: DataDir, src: Path) -> tuple[BackupInfo, Path | None]:
    """Put the backup `src` in place as this data dir's node; the daemon must be stopped.

    An empty data dir gets the backup's key, config and database. A data dir of the
    same node keeps its key and config and gets the backup's database; its database
    is moved aside (returned). A data dir of another node is refused.

    Raises:
        LocalError: `src` is not a usable backup, a daemon runs here, or the data
            dir holds another node; nothing is changed then.
    """
    info = check_backup(src)
    dd.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with dd.lock():
        if dd.initialised():
            current = read_key(dd.key).public.hex()
            if current != info.node_id:
                raise LocalError(
                    f"{dd.root} holds another node ({current[:12]}); the backup is of node "
                    f"{info.node_id[:12]}. Restore into an empty --data-dir."
                )
        floor = _own_floor(dd.db)
        tmp = dd.root / "restore.db.partial"
        for p in _db_files(tmp):
            p.unlink(missing_ok=True)
        os.close(os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
        try:
            with contextlib.closing(sqlite3.connect(f"file:{src}?mode=ro", uri=True)) as s:
                files = dict(s.execute("SELECT name, data FROM backup_files"))
                with contextlib.closing(sqlite3.connect(tmp)) as out:
                    s.backup(out)
                    out.execute("DROP TABLE backup_files")
                    for name, value in floor.items():
                        out.execute(
                            "UPDATE meta SET value = max(value, ?) WHERE name = ?", (value, name)
                        )
                        out.execute(
                            "INSERT OR IGNORE INTO meta(name, value) VALUES (?, ?)", (name, value)
                        )
                    out.commit()
                    out.execute("PRAGMA journal_mode=WAL")
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        except (sqlite3.Error, OSError) as exc:
            tmp.unlink(missing_ok=True)
            raise LocalError(f"restore failed, nothing was changed: {exc}") from None
        aside = _move_aside(dd)
        os.replace(tmp, dd.db)
        if not dd.initialised():
            for name in (CONFIG_FILE, KEY_FILE):  # the key last: it marks a node
                part = dd.root / (name + ".partial")
                fd = os.open(part, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(files[name])
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(part, dd.root / name)
        os.chmod(dd.root, 0o700)
        fsync_dir(dd.root)
    return info, aside


def _db_files(db: Path) -> list[Path]:
    return [Path(f"{db}{suffix}") for suffix in ("", "-wal", "-shm", "-journal")]


def _own_floor(db: Path) -> dict[str, int]:
    """This node's seq and clock in the database being replaced (none if unreadable:
    a corrupt store is a reason to restore; the clock floor still holds)."""
    if not db.exists():
        return {}
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as d:
            rows = d.execute("SELECT name, value FROM meta WHERE name IN ('seq', 'hlc')")
            return {str(n): int(v) for n, v in rows}
    except (sqlite3.Error, ValueError, TypeError):
        return {}


def _move_aside(dd: DataDir) -> Path | None:
    """Move the current database files into ``before-restore-N/``; None if none."""
    present = [p for p in _db_files(dd.db) if p.exists()]
    if not present:
        return None
    n = 1
    while (dd.root / f"before-restore-{n}").exists():
        n += 1
    aside = dd.root / f"before-restore-{n}"
    aside.mkdir(mode=0o700)
    for p in present:
        os.replace(p, aside / p.name)
    return aside
