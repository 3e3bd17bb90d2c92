"""Ed25519 identities: one key per node (and one per member), kept in a 0600 file.

The libp2p peer id of a node is derived from the same public key, so the key that
signs a node's records is the key its network connections authenticate with.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.errors import LocalError

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
# protobuf PublicKey{Type: Ed25519, Data: <32 bytes>} inside an identity multihash
_PEER_ID_PREFIX = bytes([0x00, 36, 0x08, 0x01, 0x12, 0x20])


@dataclass(frozen=True)
class Identity:
    """An Ed25519 key pair.

    Attributes:
        seed: the 32-byte private seed (secret).
        public: the 32-byte public key, used as record `origin`.
    """

    seed: bytes
    public: bytes

    @classmethod
    def generate(cls) -> Identity:
        return cls.from_seed(
            Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        )

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        if len(seed) != 32:
            raise LocalError("an Ed25519 seed is 32 bytes")
        key = Ed25519PrivateKey.from_private_bytes(seed)
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return cls(seed, public)

    def sign(self, message: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)

    def signer(self) -> _Signer:
        """A fast signing callable that keeps the parsed private key."""
        return _Signer(Ed25519PrivateKey.from_private_bytes(self.seed))

    @property
    def peer_id(self) -> str:
        return peer_id_of(self.public)

    @property
    def short(self) -> str:
        return self.public.hex()[:12]


class _Signer:
    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    def __call__(self, message: bytes) -> bytes:
        return self._key.sign(message)


def peer_id_of(public: bytes) -> str:
    """The libp2p peer id (base58 identity multihash) of an Ed25519 public key."""
    return _b58encode(_PEER_ID_PREFIX + public)


def _b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


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
    _fsync_dir(path.parent)


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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
