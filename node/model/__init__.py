"""Record kinds and their validation (ValueFlows-aligned), units, scopes and periods.

One explicit table, `KINDS`, maps every record kind to its body validator: the
planning kinds (`kinds`), the governance kinds (`gov_kinds`), the trust kinds
(`trust_kinds`: charter, endorse, invite, apply) and the commitment kinds
(`commit_kinds`: offer, accept, decline, deliver, confirm, dispute). Validation depends on
the record alone, never on other records, so every replica accepts or rejects the same
record the same way whatever it holds; and it is total: any value in a body gets a
`ValidationError` with a reason, never another exception.

Modules: `fields` (shared field checks), `scope` (scopes and partitions), `units`
(units, quantities, periods), `kinds`, `gov_kinds`, `trust_kinds`, `commit_kinds`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node.errors import ValidationError
from node.model.commit_kinds import (
    COMMIT_KINDS,
    ROLES,
    check_commit_key,
    check_date,
    content_key,
    offer_ref,
    reply_key,
)
from node.model.delib_kinds import DELIB_KINDS
from node.model.fields import HEX, HEX64, hex64, int_field, matches, only_fields, shown, text
from node.model.gov_kinds import (
    BUDGET_METHODS,
    GOV_KINDS,
    GOV_METHODS,
    MAX_CHUNKS,
    MAX_CONTAINER_ENTRIES,
    MAX_FEATURES,
    MAX_OPTIONS,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    check_features,
    check_option_id,
)
from node.model.kinds import (
    KINDS as _PLANNING_KINDS,
)
from node.model.kinds import (
    MAX_NAME_CHARS,
    MAX_NOTE_CHARS,
    NODE_KINDS,
    PRIORITIES,
    STARTER_CATALOG,
    BodyValidator,
    Item,
    check_item_id,
)
from node.model.scope import (
    MAX_SCOPE_DEPTH,
    REGION_DEPTH,
    ancestors,
    check_scope,
    in_scope,
    partition_of,
)
from node.model.trust_kinds import (
    TRUST_KINDS,
    check_charter,
    check_trust_key,
    federation_id,
    invite_hash,
    parse_invite_ref,
)
from node.model.units import (
    DIMENSIONS,
    MAX_QUANTITY,
    UNITS,
    Unit,
    check_period,
    normalise_quantity,
    parse_quantity,
    period_end,
    period_parents,
    period_within,
    to_base,
    unit,
)

KINDS: dict[str, BodyValidator] = {
    **_PLANNING_KINDS,
    **GOV_KINDS,
    **TRUST_KINDS,
    **COMMIT_KINDS,
    **DELIB_KINDS,
}


def known_kinds() -> tuple[str, ...]:
    return tuple(sorted(KINDS))


def validate(kind: str, key: str, scope: str, body: Mapping[str, Any] | None) -> None:
    """Validate a record's kind, key, scope and body (tombstones: kind and scope only).

    Raises:
        ValidationError: what is wrong and how to fix it.
    """
    validator = KINDS.get(kind) if isinstance(kind, str) else None
    if validator is None:
        raise ValidationError(
            f"unknown record kind {shown(kind)}; known: {', '.join(known_kinds())}"
        )
    check_scope(scope)
    if kind == "charter" and "/" in scope:
        # every replica follows the federation's root; a signature elsewhere would
        # count where it is held only (admission's founders and the roots)
        raise ValidationError("a charter is signed at the federation's root (a top-level scope)")
    if body is not None:
        if not isinstance(body, dict):
            raise ValidationError("a record body is a map")
        validator(body)
        if kind == "item" and body.get("id") != key:
            raise ValidationError("an item record's key must equal its id")
    if kind in TRUST_KINDS:
        check_trust_key(kind, key, body)
    elif kind in COMMIT_KINDS:
        check_commit_key(kind, key, scope, body)


__all__ = [
    "BUDGET_METHODS",
    "COMMIT_KINDS",
    "DELIB_KINDS",
    "DIMENSIONS",
    "GOV_KINDS",
    "GOV_METHODS",
    "HEX",
    "HEX64",
    "KINDS",
    "MAX_CHUNKS",
    "MAX_CONTAINER_ENTRIES",
    "MAX_FEATURES",
    "MAX_NAME_CHARS",
    "MAX_NOTE_CHARS",
    "MAX_OPTIONS",
    "MAX_QUANTITY",
    "MAX_SCOPE_DEPTH",
    "MAX_TEXT_CHARS",
    "MAX_TITLE_CHARS",
    "NODE_KINDS",
    "PRIORITIES",
    "REGION_DEPTH",
    "ROLES",
    "STARTER_CATALOG",
    "TRUST_KINDS",
    "UNITS",
    "BodyValidator",
    "Item",
    "Unit",
    "ValidationError",
    "ancestors",
    "check_charter",
    "check_commit_key",
    "check_date",
    "check_features",
    "check_item_id",
    "check_option_id",
    "check_period",
    "check_scope",
    "check_trust_key",
    "content_key",
    "federation_id",
    "hex64",
    "in_scope",
    "int_field",
    "invite_hash",
    "known_kinds",
    "matches",
    "normalise_quantity",
    "offer_ref",
    "only_fields",
    "parse_invite_ref",
    "parse_quantity",
    "partition_of",
    "period_end",
    "period_parents",
    "period_within",
    "reply_key",
    "text",
    "to_base",
    "unit",
    "validate",
]
