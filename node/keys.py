"""Ed25519 key pairs, pure: signing, public keys and libp2p peer ids.

A node has one key (and each member one); the libp2p peer id of a node is derived
from the same public key, so the key that signs a node's records is the key its
network connections authenticate with. Reading and writing key files, and making new
keys from the system's randomness, is `node.identity`'s (the edge).
"""

from __future__ import annotations

from dataclasses import dataclass

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
    def from_seed(cls, seed: bytes) -> Identity:
        """Raises LocalError: the seed is not 32 bytes."""
        if len(seed) != 32:
            raise LocalError("an Ed25519 seed is 32 bytes")
        key = Ed25519PrivateKey.from_private_bytes(seed)
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return cls(seed, public)

    def sign(self, message: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)

    def signer(self) -> KeySigner:
        """A fast signing callable that keeps the parsed private key."""
        return KeySigner(Ed25519PrivateKey.from_private_bytes(self.seed))

    @property
    def peer_id(self) -> str:
        return peer_id_of(self.public)

    @property
    def short(self) -> str:
        return self.public.hex()[:12]


class KeySigner:
    """Signs with one parsed private key (parsing it costs more than signing)."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    def __call__(self, message: bytes) -> bytes:
        return self._key.sign(message)


def peer_id_of(public: bytes) -> str:
    """The libp2p peer id (base58 identity multihash) of an Ed25519 public key."""
    return _b58encode(_PEER_ID_PREFIX + public)


def public_of_peer_id(peer_id: str) -> bytes | None:
    """The Ed25519 public key inside a libp2p peer id, or None for any other id."""
    n = 0
    for c in peer_id:
        d = _B58.find(c)
        if d < 0:
            return None
        n = n * 58 + d
    pad = len(peer_id) - len(peer_id.lstrip("1"))
    size = (n.bit_length() + 7) // 8
    data = b"\0" * pad + n.to_bytes(size, "big")
    if len(data) != len(_PEER_ID_PREFIX) + 32 or not data.startswith(_PEER_ID_PREFIX):
        return None
    return data[len(_PEER_ID_PREFIX) :]


def _b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))
