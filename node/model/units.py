"""Units and quantities (exact, normalised to a base unit per dimension) and periods."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from node.errors import ValidationError
from node.model.fields import shown


@dataclass(frozen=True)
class Unit:
    symbol: str
    dimension: str
    factor: Fraction  # how many base units one of this unit is


DIMENSIONS: dict[str, str] = {
    "mass": "kg",
    "volume": "l",
    "energy": "kWh",
    "labour": "h",
    "count": "pcs",
    "area": "m2",
    "length": "m",
}

UNITS: dict[str, Unit] = {
    u.symbol: u
    for u in [
        Unit("g", "mass", Fraction(1, 1000)),
        Unit("kg", "mass", Fraction(1)),
        Unit("t", "mass", Fraction(1000)),
        Unit("ml", "volume", Fraction(1, 1000)),
        Unit("l", "volume", Fraction(1)),
        Unit("m3", "volume", Fraction(1000)),
        Unit("Wh", "energy", Fraction(1, 1000)),
        Unit("kWh", "energy", Fraction(1)),
        Unit("MWh", "energy", Fraction(1000)),
        Unit("min", "labour", Fraction(1, 60)),
        Unit("h", "labour", Fraction(1)),
        Unit("day", "labour", Fraction(8)),  # a person-day of work is 8 hours
        Unit("pcs", "count", Fraction(1)),
        Unit("dozen", "count", Fraction(12)),
        Unit("m2", "area", Fraction(1)),
        Unit("ha", "area", Fraction(10000)),
        Unit("m", "length", Fraction(1)),
        Unit("km", "length", Fraction(1000)),
    ]
}


def unit(symbol: Any) -> Unit:
    """Look up a unit.

    Raises:
        ValidationError: for an unknown unit, listing the known ones.
    """
    found = UNITS.get(symbol) if isinstance(symbol, str) else None
    if found is None:
        raise ValidationError(f"unknown unit {shown(symbol)}; known units: {', '.join(UNITS)}")
    return found


MAX_QUANTITY = Decimal("1e15")
# A quantity in a record: plain ASCII decimal, up to 6 places. No sign, no exponent,
# no '_' separators (Decimal() would take "5_0"), no spaces, no other digits.
_QUANTITY = re.compile(r"[0-9]{1,16}(?:\.[0-9]{1,6})?")
_USER_QUANTITY = re.compile(r"[0-9+\-.eE]{1,40}")


def parse_quantity(value: Any) -> Decimal:
    """Parse a record's quantity: a decimal string like ``12.5`` (or a plain int).

    Raises:
        ValidationError: non-numeric, zero, negative, too precise or absurdly large.
    """
    if type(value) is int or (isinstance(value, str) and _QUANTITY.fullmatch(value)):
        q = Decimal(value)
    else:
        raise ValidationError(
            f"quantity {shown(value)} must be a decimal number like 12.5 (digits, one point, "
            "at most 6 decimal places)"
        )
    if q <= 0:
        raise ValidationError(f"quantity {shown(value)} must be greater than zero")
    if q > MAX_QUANTITY:
        raise ValidationError(f"quantity {shown(value)} is larger than {MAX_QUANTITY:,.0f}")
    return q


# Quantities, periods seen valid: records repeat them (bounded, like the scopes).
_GOOD_QUANTITIES: set[str] = set()
_GOOD_PERIODS: set[str] = set()
_GOOD_MAX = 100_000
_MAX_WHOLE = 10**15  # MAX_QUANTITY as an int


def check_quantity(value: Any) -> None:
    """`parse_quantity` as a check: the same quantities pass and the same errors are
    raised, without a `Decimal` for the common ones (every need and capacity merged
    is checked).

    Raises:
        ValidationError: as `parse_quantity`.
    """
    if type(value) is str:
        if value in _GOOD_QUANTITIES:
            return
        if _QUANTITY.fullmatch(value):
            whole, _, frac = value.partition(".")
            w = int(whole)
            # Positive, and below the limit whatever the decimals: the rest (zero,
            # the limit itself and above) is decided by `parse_quantity`.
            if (0 < w < _MAX_WHOLE) or (w == 0 and frac.strip("0")):
                if len(_GOOD_QUANTITIES) < _GOOD_MAX:
                    _GOOD_QUANTITIES.add(value)
                return
    elif type(value) is int and 0 < value <= _MAX_WHOLE:
        return
    parse_quantity(value)


def normalise_quantity(text: Any) -> str:
    """A quantity as a person types it (``12.5``, ``1e3``, `` 5 ``) in record form.

    Raises:
        ValidationError: not a positive number with at most 6 decimal places.
    """
    raw = text.strip() if isinstance(text, str) else text
    if isinstance(raw, str) and raw.startswith("-"):
        raise ValidationError(f"quantity {shown(text)} must be greater than zero")
    if not isinstance(raw, str) or not _USER_QUANTITY.fullmatch(raw):
        raise ValidationError(f"quantity {shown(text)} is not a number; write it like 12.5")
    try:
        q = Decimal(raw)
    except InvalidOperation:
        raise ValidationError(
            f"quantity {shown(text)} is not a number; write it like 12.5"
        ) from None
    if not q.is_finite():
        raise ValidationError(f"quantity {shown(text)} must be a finite number")
    if q <= 0:
        raise ValidationError(f"quantity {shown(text)} must be greater than zero")
    if q > MAX_QUANTITY:
        raise ValidationError(f"quantity {shown(text)} is larger than {MAX_QUANTITY:,.0f}")
    if q != q.quantize(Decimal("0.000001")):
        raise ValidationError(f"quantity {shown(text)} has more than 6 decimal places")
    out = format(q.normalize(), "f")
    parse_quantity(out)
    return out


def to_base(quantity: Decimal, symbol: str) -> Fraction:
    """Exact quantity in the base unit of its dimension."""
    return Fraction(quantity) * unit(symbol).factor


_PERIOD = re.compile(r"[0-9]{4}(?:-(?:Q[1-4]|0[1-9]|1[0-2]|W(?:0[1-9]|[1-4][0-9]|5[0-3])))?")


def check_period(period: Any) -> str:
    """A planning period: ``2027``, ``2027-Q1``, ``2027-03`` or ``2027-W05`` (an ISO
    week: ``W53`` only in the years that have one).

    Raises:
        ValidationError: naming the accepted forms.
    """
    if type(period) is str and period in _GOOD_PERIODS:
        return period
    if not isinstance(period, str) or not _PERIOD.fullmatch(period):
        raise ValidationError(
            f"period {shown(period)} is malformed; use 2027, 2027-Q1, 2027-03 or 2027-W05"
        )
    if period[5:6] == "W" and period_parents(period) == ():
        raise ValidationError(f"{period[:4]} has no ISO week {period[6:]}")
    if len(_GOOD_PERIODS) < _GOOD_MAX:
        _GOOD_PERIODS.add(period)
    return period


_PARENTS: dict[str, tuple[str, ...]] = {}


def period_parents(period: str) -> tuple[str, ...]:
    """The periods a valid-looking `period` lies inside, nearest first.

    The rule, one for every replica: a month lies in its quarter, a quarter in its
    year; an ISO week lies in the month that holds its Thursday (as ISO 8601 puts a
    week in the year of its Thursday), and so in that month's quarter and year. A year
    lies in nothing. () for an ISO week its year does not have (W53 of a 52-week year).
    """
    found = _PARENTS.get(period)
    if found is not None:
        return found
    year = period[:4]
    rest = period[5:]
    out: tuple[str, ...]
    if not rest:
        out = ()
    elif rest[0] == "Q":
        out = (year,)
    elif rest[0] == "W":
        try:
            thursday = date.fromisocalendar(int(year), int(rest[1:]), 4)
        except ValueError:
            out = ()
        else:
            month = f"{thursday.year:04d}-{thursday.month:02d}"
            out = (month, *period_parents(month))
    else:
        out = (f"{year}-Q{(int(rest) - 1) // 3 + 1}", year)
    if len(_PARENTS) < 100_000:
        _PARENTS[period] = out
    return out


def period_end(period: str) -> date:
    """The last day of a valid `period` (ISO weeks end on Sunday)."""
    year, rest = int(period[:4]), period[5:]
    if not rest:
        return date(year, 12, 31)
    if rest[0] == "W":
        return date.fromisocalendar(year, int(rest[1:]), 7)
    month = 3 * int(rest[1]) if rest[0] == "Q" else int(rest)
    first_of_next = date(year + month // 12, month % 12 + 1, 1)
    return date.fromordinal(first_of_next.toordinal() - 1)


def period_within(period: str, container: str) -> bool:
    """True if `period` is `container` or lies inside it (see `period_parents`)."""
    return period == container or container in period_parents(period)
