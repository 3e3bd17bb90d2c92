"""Key files and new keys: the edge of `node.keys`.

A key file is PEM (PKCS#8), mode 0600, never overwritten, and refused when others
can read it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.errors import LocalError
from node.files import fsync_dir
from node.keys import Identity, KeySigner, peer_id_of

__all__ = ["Identity", "KeySigner", "generate", "peer_id_of", "read_key", "write_key"]


def generate() -> Identity:
    """A new key pair from the system's randomness."""
    return Identity.from_seed(os.urandom(32))


def write_key(path: Path, identity: Identity) -> None:
    """Write a key file readable by its owner only; never overwrite one.

    Raises:
        LocalError: if the file exists already.
    """
    pem = Ed25519PrivateKey.from_private_bytes(identity.seed).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise LocalError(f"{path} exists already; refusing to overwrite an identity") from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(path.parent)


def read_key(path: Path) -> Identity:
    """Read a key file, refusing one that others can read.

    Raises:
        LocalError: missing, unreadable, too open, or not an Ed25519 key.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        raise LocalError(f"no key file at {path}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise LocalError(
            f"key file {path} is readable by others (mode {stat.S_IMODE(st.st_mode):o}); "
            f"run: chmod 600 {path}"
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise LocalError(f"{path} is not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LocalError(f"{path} holds a key that is not Ed25519")
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return Identity.from_seed(seed)
