"""The data dir: where a node keeps its key, config, database and control socket.

Resolution: ``--data-dir`` option, else ``$ALLMENDE_DATA_DIR``, else
``$XDG_DATA_HOME/allmende`` (``~/.local/share/allmende``). The config is a small TOML
file; the key file is 0600 and the directory 0700.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from node import model
from node.errors import DataDirBusy, LocalError, ValidationError
from node.files import replace_private, write_private
from node.identity import Identity, generate, read_key, write_key

ENV_DATA_DIR = "ALLMENDE_DATA_DIR"
KEY_FILE = "node.key"
CONFIG_FILE = "config.toml"
DB_FILE = "allmende.db"
SOCKET_FILE = "control.sock"
LOCK_FILE = "daemon.lock"
DEFAULT_PORT = 7946
DEFAULT_SCOPE = "local"
DEFAULT_WEB_PORT = 7947
WEB_TOKEN_FILE = "web.token"
WEB_URL_FILE = "web.url"
LOOPBACK_HOSTS = ("127.0.0.1", "::1")


def default_data_dir() -> Path:
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "allmende"


@dataclass(frozen=True)
class Config:
    """A node's settings (config.toml).

    Attributes:
        name, kind, scope: what the node is and where it belongs.
        listen: libp2p multiaddrs to listen on.
        announce: public addresses peers can dial this node at (a VPS's public IP, a
            router's forwarded port), listed first by `status` and `peers`.
        bootstrap: peers to dial, ``/ip4/.../tcp/.../p2p/<peer id>``.
        mdns: find peers on the LAN.
        sync_interval: seconds between anti-entropy rounds with a random peer.
        metrics_port: Prometheus metrics on 127.0.0.1 at this port; 0 = off.
        web: serve the members' web app.
        web_host: the address it listens on: 127.0.0.1 unless the operator opens it
            to the LAN (``0.0.0.0``, or one of the machine's addresses).
        web_port: its TCP port; 0 = any free port (the daemon writes its URL to
            ``web.url`` in the data dir).
        charter: the charter of the node's federation (its hash is the federation id);
            None until `DataDir.init` founds a federation of this node alone.
        application: ``(invite ref, secret hex)`` of the invite this node joined with;
            the daemon publishes its application from it.
        auto: made by the first `allmende run` on defaults; `allmende init` may
            replace such a config (keeping the key) as long as the node wrote nothing.
    """

    name: str
    kind: str = "commune"
    scope: str = DEFAULT_SCOPE
    listen: tuple[str, ...] = (f"/ip4/0.0.0.0/tcp/{DEFAULT_PORT}",)
    bootstrap: tuple[str, ...] = ()
    announce: tuple[str, ...] = ()
    mdns: bool = True
    sync_interval: float = 30.0
    metrics_port: int = 0
    web: bool = True
    web_host: str = "127.0.0.1"
    web_port: int = DEFAULT_WEB_PORT
    charter: dict[str, Any] | None = None
    application: tuple[str, str] | None = None
    auto: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def federation(self) -> str:
        """The federation id (hex).

        Raises:
            LocalError: the config has no charter yet.
        """
        if self.charter is None:
            raise LocalError("this node belongs to no federation yet; run: allmende init")
        return model.federation_id(self.charter)

    def check(self) -> Config:
        """Validate; raises LocalError naming the setting to fix."""
        try:
            model.validate(
                "node",
                "self",
                self.scope,
                {"name": self.name, "kind": self.kind, "scope": self.scope},
            )
        except ValidationError as exc:
            raise LocalError(f"config: {exc}") from None
        if not self.listen:
            raise LocalError("config: [network] listen needs at least one address")
        if not 0 <= self.metrics_port <= 65535:
            raise LocalError("config: [metrics] port must be 0 (off) or 1-65535")
        if not 0 <= self.web_port <= 65535:
            raise LocalError("config: [web] port must be 0 (any free port) or 1-65535")
        try:
            ipaddress.ip_address(self.web_host)
        except ValueError:
            raise LocalError(
                "config: [web] host must be an IP address: 127.0.0.1 (this machine only) "
                "or 0.0.0.0 (the LAN)"
            ) from None
        if self.sync_interval <= 0:
            raise LocalError("config: [network] sync_interval must be positive")
        if self.charter is not None:
            try:
                model.check_charter(self.charter)
            except ValidationError as exc:
                raise LocalError(f"config: [federation] {exc}") from None
        if self.application is not None:
            try:
                model.parse_invite_ref(self.application[0])
                model.hex64(self.application[1], "secret")
            except ValidationError as exc:
                raise LocalError(f"config: [federation] invite: {exc}") from None
        return self

    def to_toml(self) -> str:
        lines = [
            "# Allmende node configuration",
            "[node]",
            f"name = {_q(self.name)}",
            f"kind = {_q(self.kind)}",
            f"scope = {_q(self.scope)}",
        ]
        if self.auto:
            lines.append("# made by the first run on defaults: allmende init may replace it")
            lines.append("auto = true")
        lines.append("")
        if self.charter is not None:
            rule = self.charter["rule"]
            lines += [
                "[federation]",
                "# The charter of this node's federation; its hash is the federation id.",
                "# Do not edit: another charter is another federation.",
                f"name = {_q(str(self.charter['name']))}",
                f"founders = [{', '.join(_q(f) for f in self.charter['founders'])}]",
                f"rule = {{ cap = {rule['cap']}, num = {rule['num']}, den = {rule['den']} }}",
            ]
            if self.application is not None:
                lines.append(f"invite = {_q(self.application[0])}")
                lines.append(f"secret = {_q(self.application[1])}")
            lines.append("")
        return "\n".join(
            [
                *lines,
                "[network]",
                f"listen = [{', '.join(_q(a) for a in self.listen)}]",
                f"bootstrap = [{', '.join(_q(a) for a in self.bootstrap)}]",
                *(
                    [f"announce = [{', '.join(_q(a) for a in self.announce)}]"]
                    if self.announce
                    else []
                ),
                f"mdns = {'true' if self.mdns else 'false'}",
                f"sync_interval = {self.sync_interval}",
                "",
                "[metrics]",
                "# Prometheus metrics on 127.0.0.1:<port>; 0 turns them off",
                f"port = {self.metrics_port}",
                "",
                "[web]",
                "# The members' web app; host 0.0.0.0 opens it to the LAN",
                f"enabled = {'true' if self.web else 'false'}",
                f"host = {_q(self.web_host)}",
                f"port = {self.web_port}",
                "",
            ]
        )

    @classmethod
    def from_toml(cls, text: str, source: str = CONFIG_FILE) -> Config:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise LocalError(f"{source}: {exc}") from None
        node, net, metrics, fed, web = (
            data.get(k, {}) for k in ("node", "network", "metrics", "federation", "web")
        )
        try:
            charter = None
            if fed:
                rule = fed.get("rule", {})
                charter = {
                    "name": str(fed["name"]),
                    "founders": [str(f) for f in fed["founders"]],
                    "rule": {k: int(rule[k]) for k in ("cap", "num", "den")},
                }
            application = None
            if fed.get("invite") is not None:
                application = (str(fed["invite"]), str(fed["secret"]))
            cfg = cls(
                name=str(node["name"]),
                kind=str(node.get("kind", "commune")),
                scope=str(node.get("scope", DEFAULT_SCOPE)),
                listen=tuple(str(a) for a in net.get("listen", cls.listen)),
                bootstrap=tuple(str(a) for a in net.get("bootstrap", ())),
                announce=tuple(str(a) for a in net.get("announce", ())),
                mdns=bool(net.get("mdns", True)),
                sync_interval=float(net.get("sync_interval", 30.0)),
                metrics_port=int(metrics.get("port", 0)),
                web=bool(web.get("enabled", True)),
                web_host=str(web.get("host", "127.0.0.1")),
                web_port=int(web.get("port", DEFAULT_WEB_PORT)),
                charter=charter,
                application=application,
                auto=bool(node.get("auto", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LocalError(f"{source}: missing or bad setting {exc}") from None
        return cfg.check()


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class DataDir:
    """Paths inside one node's data dir."""

    root: Path

    @property
    def key(self) -> Path:
        return self.root / KEY_FILE

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def db(self) -> Path:
        return self.root / DB_FILE

    @property
    def socket(self) -> Path:
        return self.root / SOCKET_FILE

    @property
    def web_token(self) -> Path:
        return self.root / WEB_TOKEN_FILE

    @property
    def web_url(self) -> Path:
        return self.root / WEB_URL_FILE

    @property
    def lockfile(self) -> Path:
        return self.root / LOCK_FILE

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the data dir's daemon lock (one daemon per data dir).

        Raises:
            LocalError: another process holds it; nothing in the data dir is touched.
        """
        fd = os.open(self.lockfile, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                raise DataDirBusy(
                    f"another allmende daemon (pid {other}) is running on {self.root}; "
                    "stop it first, or give this one its own --data-dir"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def initialised(self) -> bool:
        return self.key.exists()

    def load(self) -> tuple[Identity, Config]:
        """Read the identity and config.

        Raises:
            LocalError: not initialised, or a file is bad (the message says which).
        """
        if not self.initialised():
            raise LocalError(f"no node in {self.root}; run: allmende init")
        identity = read_key(self.key)
        try:
            text = self.config.read_text()
        except FileNotFoundError:
            raise LocalError(f"{self.config} is missing") from None
        config = Config.from_toml(text, str(self.config))
        if config.charter is None:
            # Made before federations existed: the node founds one of its own.
            config = replace(config, charter=solo_charter(config.name, identity.public))
            self.write_config(config)
        return identity, config

    def init(
        self,
        config: Config,
        *,
        listen_port: int | None = None,
        identity: Identity | None = None,
    ) -> Identity:
        """Create key and config; refuses to touch an existing identity.

        Args:
            config: the settings (without a charter: the node founds a federation of
                its own).
            listen_port: listen on all interfaces at this TCP port.
            identity: the node's key, when it has one already (moved from another
                machine, restored from a backup); else a new one.

        Raises:
            LocalError: an identity exists already, or the config is invalid.
        """
        config.check()
        if listen_port is not None:
            config = replace(config, listen=(f"/ip4/0.0.0.0/tcp/{listen_port}",))
        if self.key.exists():
            return self._replace_first_run(config)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        identity = identity or generate()
        if config.charter is None:
            config = replace(config, charter=solo_charter(config.name, identity.public))
        tmp = write_private(self.config.with_suffix(".tmp"), config.to_toml())
        write_key(self.key, identity)
        os.replace(tmp, self.config)
        return identity

    def _replace_first_run(self, config: Config) -> Identity:
        """`init` over what the first `allmende run` made on defaults: keep the key,
        replace the config, forget the database -- if the node wrote nothing of note.

        Raises:
            LocalError: the identity was made by `init`, a daemon runs, or the node
                wrote records beyond its node record and charter.
        """
        identity, current = self.load()
        if not current.auto:
            raise LocalError(
                f"a node identity exists already in {self.root}; refusing to overwrite it "
                f"(use another --data-dir for a second node)"
            )
        from node.crdt.replica import Replica
        from node.store import Store

        with self.lock():
            if self.db.exists():
                replica = Replica()
                store = Store(self.db)
                try:
                    store.load_into(replica)
                finally:
                    store.close()
                written = [
                    r
                    for r in replica.records()
                    if not (r.origin == identity.public and r.kind in ("node", "charter"))
                ]
                if written:
                    raise LocalError(
                        f"the node in {self.root} (made by the first run) holds "
                        f"{len(written)} record(s) of its own or its peers' already; keep it "
                        "(edit config.toml) or give the new node another --data-dir"
                    )
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{self.db}{suffix}").unlink(missing_ok=True)
            if config.charter is None:
                config = replace(config, charter=solo_charter(config.name, identity.public))
            self.write_config(replace(config, auto=False))
        return identity

    def use_charter(self, charter: dict[str, Any]) -> Config:
        """Make this node a node of the federation `charter` founds (a founder, or a
        node that will be invited). Only while no daemon runs on the data dir.

        Raises:
            LocalError: a daemon runs, the charter is invalid, or the node is not
                initialised.
        """
        _, config = self.load()
        try:
            model.check_charter(charter)
        except ValidationError as exc:
            raise LocalError(f"not a valid charter: {exc}") from None
        with self.lock():
            config = replace(config, charter=dict(charter), application=None, auto=False)
            self.write_config(config)
        return config

    def write_config(self, config: Config) -> None:
        """Replace config.toml atomically; the new file is 0600 like the key."""
        replace_private(self.config, config.check().to_toml())


def solo_charter(name: str, founder: bytes) -> dict[str, Any]:
    """The charter of a federation of one node (what a node founds on defaults)."""
    body = {
        "name": f"{name} (own federation)"[: model.MAX_NAME_CHARS],
        "founders": [founder.hex()],
        "rule": {"cap": 3, "num": 1, "den": 2},
    }
    model.check_charter(body)
    return body
