"""Private files in the data dir: written whole, 0600 whatever the umask, flushed."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, text: str) -> Path:
    """Write `path` (mode 0600), flushed to disk; returns it.

    The config and the peer book name the node's peers and addresses: nobody else's
    business. O_CREAT's mode is masked by the umask and ignored for an existing
    (leftover) file, hence the fchmod.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(fd, 0o600)
        f.write(text)
        f.flush()
        os.fsync(fd)
    return path


def replace_private(path: Path, text: str) -> None:
    """Replace `path` atomically with a private file holding `text`."""
    os.replace(write_private(path.with_suffix(".tmp"), text), path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
