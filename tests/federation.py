"""One federation for the nodes of a test: a pool of founder keys and their charter.

A node initialised with `init_args` gets the next key of the pool and the charter, so
it is a founder: admitted as soon as it signs the charter at its first start. Tests of
admission itself add nodes that are no founders (by invite) on top.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cli.trust_cmd import charter_toml
from node.governance.admission import Charter
from node.identity import Identity, write_key

POOL = 16


class TestFederation:
    """The founder keys and charter kept in `root` (made on first use)."""

    __test__ = False  # not a test class

    def __init__(self, root: Path) -> None:
        self.root = root
        self.charter_file = root / "charter.toml"
        self.identities = [
            Identity.from_seed(hashlib.sha256(f"test founder {i}".encode()).digest())
            for i in range(POOL)
        ]
        self.charter = Charter.of("Test federation", [i.public for i in self.identities])
        if not self.charter_file.exists():
            root.mkdir(parents=True, exist_ok=True)
            for i, identity in enumerate(self.identities):
                write_key(self._key(i), identity)
            self.charter_file.write_text(charter_toml(self.charter.body()))

    def _key(self, i: int) -> Path:
        return self.root / f"founder{i}.pem"

    def take(self) -> Path:
        """The key file of the next unused founder."""
        used = self.root / "used"
        n = int(used.read_text()) if used.exists() else 0
        if n >= POOL:
            raise AssertionError(f"a test federation has {POOL} founders at most")
        used.write_text(str(n + 1))
        return self._key(n)

    def init_args(self) -> list[str]:
        """Arguments for `allmende init` that make the node the next founder."""
        return ["--key", str(self.take()), "--charter", str(self.charter_file)]
