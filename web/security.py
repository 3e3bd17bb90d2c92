"""Who may change what through the web app: the operator's token and CSRF values.

Reading needs no login. Every state change (a POST) needs a CSRF value: an HMAC,
under a secret the daemon draws at start, of a random cookie the browser got with
its first page. A page from this node carries the value; another site can neither
read it nor set the cookie (SameSite=Strict), so it cannot forge a POST. Operator
actions also need the operator cookie, which only a browser that was given the
token (``allmende web token``, a 0600 file in the data dir) holds: an HMAC of the
token, so a new token ends every session.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from node.files import write_private

CSRF_COOKIE = "allmende_csrf"
OPERATOR_COOKIE = "allmende_operator"
TOKEN_BYTES = 32

__all__ = [
    "CSRF_COOKIE",
    "OPERATOR_COOKIE",
    "Csrf",
    "ensure_token",
    "is_operator",
    "new_token",
    "operator_session",
    "read_token",
    "token_matches",
]


def read_token(path: Path) -> str | None:
    """The operator token in `path`, or None if there is none."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def new_token(path: Path) -> str:
    """Write a fresh operator token (0600), replacing any earlier one."""
    token = secrets.token_hex(TOKEN_BYTES)
    os.replace(write_private(path.with_suffix(".tmp"), token + "\n"), path)
    return token


def ensure_token(path: Path) -> str:
    """The operator token in `path`, made first if there is none."""
    return read_token(path) or new_token(path)


def operator_session(token: str) -> str:
    """The operator cookie's value for `token`."""
    return hmac.new(token.encode(), b"allmende/web/operator", hashlib.sha256).hexdigest()


def is_operator(token: str | None, cookie: str | None) -> bool:
    """Does `cookie` show the current operator token?"""
    if not token or not cookie:
        return False
    return hmac.compare_digest(operator_session(token), cookie)


def token_matches(token: str | None, given: str) -> bool:
    if not token:
        return False
    return hmac.compare_digest(token.encode(), given.strip().encode())


class Csrf:
    """CSRF values bound to a browser's cookie, under a secret of this process."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    @staticmethod
    def new_cookie() -> str:
        return secrets.token_hex(16)

    def value(self, cookie: str) -> str:
        """The CSRF value a page for the browser holding `cookie` carries."""
        return hmac.new(self._secret, cookie.encode(), hashlib.sha256).hexdigest()

    def check(self, cookie: str | None, given: str | None) -> bool:
        """Is `given` the CSRF value for `cookie`? (False if either is missing.)"""
        if not cookie or not given:
            return False
        return hmac.compare_digest(self.value(cookie), given)
