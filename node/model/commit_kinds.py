"""The commitment kinds (ValueFlows Commitment and EconomicEvent): offer, accept,
decline, deliver, confirm, dispute. What they mean together is `node.planning.commitments`.

A commitment needs both nodes' signatures, each on its own record:

* ``offer``: one party proposes -- ``role`` says whether it provides or receives --
  with the counterpart's node key (``with``), item, quantity, unit, period and due
  date, and an optional note for contact ("meet the supplier");
* ``accept`` (key: ``<offerer key, first 16 hex>.<offer id>``): the counterpart signs
  that it takes the offer (``by``: the offerer, ``offer``: its id);
* ``decline`` (same key form): either party refuses or cancels the offer;
* ``deliver``: the provider records a delivery, partial or whole, against a
  commitment (``offer``: ``<offerer key hex>.<offer id>``), with its date;
* ``confirm`` / ``dispute`` (key: ``<provider key, first 16 hex>.<delivery id>``): the
  receiver confirms the delivery's quantity and date (repeated: they bind), or
  disputes it with a reason.

A track record must not lose history, so these records are permanent:

* none of them can be withdrawn: a tombstone of any of them is invalid (an offer is
  taken back, a commitment cancelled, by a ``decline``, which names who did it);
* an offer's and a delivery's id end in a digest of their scope and body
  (`content_key`), so the slot can never hold other terms: a node cannot rewrite
  what the other side accepted or confirmed. An accept names just the offer, whose id
  binds its terms; a decline's, confirm's or dispute's key is fixed by what it answers.

Validation sees one record alone, so who signed is checked where the records meet
(`node.planning.commitments`): an accept counts only if its origin is the offer's
counterpart, a delivery only if its origin is the provider, and so on.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from msgpack import packb

from node.errors import ValidationError
from node.model.fields import hex64, matches, only_fields, shown, text
from node.model.kinds import MAX_NOTE_CHARS, BodyValidator, check_item_id
from node.model.units import check_period, parse_quantity, unit

ROLES = ("provide", "receive")
_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_REF = re.compile(r"[0-9a-f]{64}\.[a-z0-9][a-z0-9-]{0,39}")
TERMS = ("item", "qty", "unit", "period", "due")
CONTENT_DOMAIN = b"allmende/commitment/1\x00"
DIGEST_HEX = 32  # 128 bits: finding two bodies for one id is out of reach
MAX_PREFIX = 40 - 1 - DIGEST_HEX  # an id is 1-40 characters


def check_id(value: Any, what: str = "an id") -> str:
    """An offer or delivery id: 1-40 lowercase letters, digits or '-'."""
    if not matches(_ID, value):
        raise ValidationError(f"{what} {shown(value)} must be 1-40 lowercase letters, digits or -")
    return str(value)


def check_date(value: Any, name: str = "date") -> date:
    """An ISO calendar date, ``2027-03-31``."""
    if matches(_DATE, value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValidationError(f"{name} {shown(value)} must be a date like 2027-03-31")


def content_key(prefix: str, scope: str, body: Mapping[str, Any]) -> str:
    """The id of an offer or a delivery: a free prefix (1-7 lowercase letters or
    digits, so that equal terms can be offered twice), "-" and a digest of its scope
    and body. The body's map keys are sorted here."""
    data = packb([scope, {k: body[k] for k in sorted(body)}], use_bin_type=True)
    digest = hashlib.blake2b(CONTENT_DOMAIN + data, digest_size=DIGEST_HEX // 2).hexdigest()
    return f"{prefix}-{digest}"


_CONTENT_KEY = re.compile(rf"[a-z0-9]{{1,{MAX_PREFIX}}}-[0-9a-f]{{{DIGEST_HEX}}}")


def reply_key(offerer: str, offer: str) -> str:
    """The key of an accept or decline of `offerer`'s (hex) offer `offer`; also of a
    confirm or dispute of a provider's delivery."""
    return f"{offerer[:16]}.{offer}"


def offer_ref(offerer: str, offer: str) -> str:
    """How a delivery names the commitment it fulfils."""
    return f"{offerer}.{offer}"


def _terms(body: Mapping[str, Any]) -> None:
    check_item_id(body.get("item"))
    parse_quantity(body.get("qty"))
    unit(body.get("unit"))
    check_period(body.get("period"))
    check_date(body.get("due"), "due")


def _offer_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"role", "with", *TERMS, "note"})
    if body.get("role") not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}")
    hex64(body.get("with"), "with (the counterpart's node key)")
    _terms(body)
    text(body, "note", MAX_NOTE_CHARS, required=False, multiline=True)


def _reply(body: Mapping[str, Any]) -> None:
    hex64(body.get("by"), "by (the offerer's node key)")
    check_id(body.get("offer"), "offer")


def _accept_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"by", "offer", "note"})
    _reply(body)
    text(body, "note", MAX_NOTE_CHARS, required=False, multiline=True)


def _decline_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"by", "offer", "reason"})
    _reply(body)
    text(body, "reason", MAX_NOTE_CHARS, required=False, multiline=True)


def _deliver_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"offer", "qty", "unit", "date", "note"})
    if not matches(_REF, body.get("offer")):
        raise ValidationError("offer must name a commitment as <offerer key hex>.<offer id>")
    parse_quantity(body.get("qty"))
    unit(body.get("unit"))
    check_date(body.get("date"))
    text(body, "note", MAX_NOTE_CHARS, required=False, multiline=True)


def _receipt(body: Mapping[str, Any]) -> None:
    hex64(body.get("by"), "by (the provider's node key)")
    check_id(body.get("delivery"), "delivery")


def _confirm_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"by", "delivery", "qty", "unit", "date"})
    _receipt(body)
    parse_quantity(body.get("qty"))
    unit(body.get("unit"))
    check_date(body.get("date"))


def _dispute_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"by", "delivery", "reason"})
    _receipt(body)
    text(body, "reason", MAX_NOTE_CHARS)


_REPLY_KINDS = {"accept": "offer", "decline": "offer", "confirm": "delivery", "dispute": "delivery"}


def check_commit_key(kind: str, key: str, scope: str, body: Mapping[str, Any] | None) -> None:
    """The key rules of the commitment kinds: none can be withdrawn; an offer's and a
    delivery's key is its `content_key`; a reply's key is `reply_key` of what it
    answers."""
    if body is None:
        raise ValidationError(
            f"a {kind} cannot be withdrawn: commitments and their fulfilment are kept for "
            "the track record (decline an offer or commitment instead)"
        )
    if kind in ("offer", "deliver"):
        what = "an offer" if kind == "offer" else "a delivery"
        if not matches(_CONTENT_KEY, key):
            raise ValidationError(f"{what}'s key {shown(key)} must be <prefix>-<digest>")
        if key != content_key(key.split("-", 1)[0], scope, body):
            raise ValidationError(
                f"{what}'s key must end in the digest of its scope and body "
                "(it cannot be rewritten: make a new one)"
            )
        return
    field = _REPLY_KINDS[kind]
    if key != reply_key(str(body.get("by")), str(body.get(field))):
        raise ValidationError(f"a {kind}'s key must be <by, first 16 hex>.<{field}>")


COMMIT_KINDS: dict[str, BodyValidator] = {
    "offer": _offer_body,
    "accept": _accept_body,
    "decline": _decline_body,
    "deliver": _deliver_body,
    "confirm": _confirm_body,
    "dispute": _dispute_body,
}
