"""The deliberation kinds: comment, statement, reaction, amendment, decision, hide.

Record kinds of node.governance.deliberation (docs/governance.md, "Deliberation").
A member signs ``comment``, ``statement``, ``reaction`` and ``amendment`` with their
own key; the proposal's author node signs ``decision`` on an amendment; a commune node
signs ``hide`` on a comment of one of its members. Whether the signer may do so (a
member of the electorate, the author, the admitting node) is decided from the other
records by the pure functions of node.governance.deliberation; here the body alone.

A record names another member's record by ``<author key hex>.<key>`` (a *ref*).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from node.errors import ValidationError
from node.model.fields import int_field, matches, only_fields, shown, text

MAX_COMMENT_CHARS = 2000
MAX_STATEMENT_CHARS = 280
MAX_REASON_CHARS = 500
MAX_AMENDMENT_CHARS = 4000
MAX_VERSION = 10_000
REACTIONS = ("agree", "disagree", "pass")
_PROPOSAL = re.compile(r"[0-9a-f]{16}\.[a-z0-9][a-z0-9-]{0,39}")
_LOCAL = re.compile(r"[a-z0-9][a-z0-9-]{0,23}")
_REF = re.compile(r"[0-9a-f]{64}\.[a-z0-9][a-z0-9-]{0,23}")
_OPTION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,23}")


def check_local(value: Any, name: str = "key") -> str:
    """A member's own id for a comment, statement or amendment: 1-24 of a-z, 0-9, '-'."""
    if not matches(_LOCAL, value):
        raise ValidationError(
            f"{name} {shown(value)} must be 1-24 lowercase letters, digits or '-'"
        )
    return str(value)


def check_ref(value: Any, name: str) -> str:
    """``<author key hex (64)>.<local id>``."""
    if not matches(_REF, value):
        raise ValidationError(f"{name} must be <author key hex>.<id>, got {shown(value)}")
    return str(value)


def _proposal(body: Mapping[str, Any]) -> None:
    if not matches(_PROPOSAL, body.get("proposal")):
        raise ValidationError("proposal must be a proposal id like 0123456789abcdef.playground")


def _comment_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"proposal", "text", "reply"})
    _proposal(body)
    text(body, "text", MAX_COMMENT_CHARS, multiline=True)
    if "reply" in body:
        check_ref(body["reply"], "reply")


def _statement_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"proposal", "text"})
    _proposal(body)
    text(body, "text", MAX_STATEMENT_CHARS)


def _reaction_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"proposal", "statement", "react"})
    _proposal(body)
    check_ref(body.get("statement"), "statement")
    if body.get("react") not in REACTIONS:
        raise ValidationError(f"react must be one of {', '.join(REACTIONS)}")


def _amendment_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"proposal", "version", "text", "options", "reason"})
    _proposal(body)
    int_field(body, "version", 1, MAX_VERSION)
    if "text" not in body and "options" not in body:
        raise ValidationError("an amendment changes the text or the options (or both)")
    text(body, "text", MAX_AMENDMENT_CHARS, required=False, multiline=True)
    text(body, "reason", MAX_REASON_CHARS, required=False, multiline=True)
    if "options" in body:
        options = body["options"]
        if not isinstance(options, list) or not 0 < len(options) <= 20:
            raise ValidationError("options must list 1 to 20 options to add or rename")
        for o in options:
            if not isinstance(o, dict):
                raise ValidationError("each option is a map with id and name")
            only_fields(o, {"id", "name"})
            if not matches(_OPTION_ID, o.get("id")):
                raise ValidationError(
                    f"option id {shown(o.get('id'))} must be 1-24 letters or digits"
                )
            text(o, "name", 100)


def _decision_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"amendment", "accept", "reason", "version"})
    check_ref(body.get("amendment"), "amendment")
    if not isinstance(body.get("accept"), bool):
        raise ValidationError("accept must be true or false")
    text(body, "reason", MAX_REASON_CHARS, required=not body["accept"], multiline=True)
    if body["accept"]:
        int_field(body, "version", 2, MAX_VERSION)
    elif "version" in body:
        raise ValidationError("a rejection names no version")


def _hide_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"comment", "reason"})
    check_ref(body.get("comment"), "comment")
    text(body, "reason", MAX_REASON_CHARS, multiline=True)


DELIB_KINDS = {
    "comment": _comment_body,
    "statement": _statement_body,
    "reaction": _reaction_body,
    "amendment": _amendment_body,
    "decision": _decision_body,
    "hide": _hide_body,
}
