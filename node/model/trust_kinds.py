"""The trust kinds: charter, endorse, invite, apply (who counts; see
`node.governance.admission`).

* ``charter``: a founder signs the federation's charter; the key is the federation
  id, the hash of the body, so a charter record cannot claim another federation.
* ``endorse``: an admitted node vouches for another node (key: its public key, hex);
  the tombstone withdraws it.
* ``invite``: a one-use offer to endorse whoever shows its secret (body: the hash of
  the secret; the secret travels in the invite code, off the network); once used, the
  inviter rewrites it naming the node it endorsed (``used_by``): who invited whom is
  public.
* ``apply``: a new node's application, naming an invite and revealing its secret.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from msgpack import packb

from node.errors import ValidationError
from node.model.fields import HEX64, hex64, int_field, matches, only_fields, shown, text
from node.model.kinds import MAX_NAME_CHARS, MAX_NOTE_CHARS, BodyValidator

MAX_FOUNDERS = 32
CHARTER_DOMAIN = b"allmende/charter/1\x00"
INVITE_DOMAIN = b"allmende/invite/1\x00"
_INVITE_KEY = re.compile(r"[a-z0-9]{8,40}")


def federation_id(charter: Mapping[str, Any]) -> str:
    """The id of the federation a charter founds: BLAKE2b-256 of its canonical bytes.

    The charter must be valid (`check_charter`); map keys are sorted here.
    """
    data = packb(_sorted(charter), use_bin_type=True)
    return hashlib.blake2b(CHARTER_DOMAIN + data, digest_size=32).hexdigest()


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [_sorted(v) for v in value]
    return value


def invite_hash(secret: bytes) -> str:
    """What an invite record publishes of its secret."""
    return hashlib.blake2b(INVITE_DOMAIN + secret, digest_size=32).hexdigest()


def check_charter(body: Mapping[str, Any]) -> None:
    """A federation's charter: a name, its founders, and the admission rule.

    The rule admits a node of a region when at least ``min(cap, max(1, ceil(active *
    num / den)))`` admitted nodes of the region endorse it (Karrot's rule by default:
    cap 3, 1/2).

    Raises:
        ValidationError: what is wrong.
    """
    if not isinstance(body, dict):
        raise ValidationError("a charter is a map")
    only_fields(body, {"name", "founders", "rule"})
    text(body, "name", MAX_NAME_CHARS)
    founders = body.get("founders")
    if not isinstance(founders, list) or not 1 <= len(founders) <= MAX_FOUNDERS:
        raise ValidationError(f"founders must list 1 to {MAX_FOUNDERS} node keys")
    for f in founders:
        hex64(f, "a founder")
    if founders != sorted(set(founders)):
        raise ValidationError("founders must be distinct and in sorted order")
    rule = body.get("rule")
    if not isinstance(rule, dict):
        raise ValidationError("rule must be a map with cap, num and den")
    only_fields(rule, {"cap", "num", "den"})
    int_field(rule, "cap", 1, 32)
    int_field(rule, "num", 1, 100)
    int_field(rule, "den", 1, 100)


def _charter_body(body: Mapping[str, Any]) -> None:
    check_charter(body)


def _endorse_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"note"})
    text(body, "note", MAX_NOTE_CHARS, required=False, multiline=True)


def _invite_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"hash", "note", "used_by"})
    hex64(body.get("hash"), "hash")
    if "used_by" in body:
        hex64(body["used_by"], "used_by")
    text(body, "note", MAX_NOTE_CHARS, required=False, multiline=True)


def _apply_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"invite", "secret"})
    parse_invite_ref(body.get("invite"))
    hex64(body.get("secret"), "secret")


def parse_invite_ref(value: Any) -> tuple[str, str]:
    """``"<inviter key hex>.<invite key>"`` -> (inviter hex, invite key).

    Raises:
        ValidationError: not of that form.
    """
    if isinstance(value, str) and value.count(".") == 1:
        inviter, key = value.split(".")
        if matches(HEX64, inviter) and check_invite_key(key, raises=False):
            return inviter, key
    raise ValidationError(f"invite {shown(value)} must be <inviter key hex>.<invite key>")


def check_invite_key(key: Any, *, raises: bool = True) -> bool:
    """An invite's key: 8-40 lowercase letters and digits."""
    if matches(_INVITE_KEY, key):
        return True
    if raises:
        raise ValidationError(f"invite key {shown(key)} must be 8-40 lowercase letters or digits")
    return False


def check_trust_key(kind: str, key: str, body: Mapping[str, Any] | None) -> None:
    """The key rules of the trust kinds (they depend on the key, not only the body)."""
    if kind == "charter":
        hex64(key, "a charter's key")
        if body is not None and key != federation_id(body):
            raise ValidationError("a charter's key must be its federation id (its hash)")
    elif kind == "endorse":
        hex64(key, "an endorsement's key (the endorsed node)")
    elif kind == "invite":
        check_invite_key(key)
    elif kind == "apply" and key != "self":
        raise ValidationError("an application's key is self")


TRUST_KINDS: dict[str, BodyValidator] = {
    "charter": _charter_body,
    "endorse": _endorse_body,
    "invite": _invite_body,
    "apply": _apply_body,
}
