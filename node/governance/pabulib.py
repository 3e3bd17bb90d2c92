"""Parser for the pabulib ``.pb`` participatory-budgeting format (pabulib.org).

A file has three sections, each introduced by a line holding only its name::

    META                      PROJECTS                     VOTES
    key;value                 project_id;cost;...          voter_id;vote;...
    budget;100000             3;7200;...                   v01;1,2,6

Each section is semicolon-separated CSV whose first row is a header. ``vote`` (and
``points``, if present) hold comma-separated lists. The parser is pure: it takes the
text, never a path, and any malformed line raises :class:`PabulibError` naming the
line (1-based) and the problem.

The CSV is read as pabulib's reference reader (Python's ``csv`` over a file opened
with ``newline=""``) means it, with its limits made errors instead of tracebacks:

* lines end at ``\r\n``, ``\r`` or ``\n`` only; U+2028, U+2029, NEL (U+0085),
  form feed and the other characters ``str.splitlines`` also breaks at are ordinary
  characters of a cell;
* a cell that starts with ``"`` is quoted: it may hold ``;``, line breaks (a row
  may span lines; errors name the line it starts on) and ``""`` for a quote;
  only blanks may follow its closing quote;
* a cell holds at most 131,072 characters (the ``csv`` module's field limit);
* numbers (costs, budget, points, counts) are ASCII digits with an optional
  leading ``-``: ``+50``, ``5_0`` or non-ASCII digits (Arabic-Indic, full-width)
  are errors, although Python's ``int()`` would take them. A budget may be written
  with a fraction that is zero (``100000.0``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from node.governance.errors import PabulibError

__all__ = ["MAX_FIELD_CHARS", "Instance", "PabulibError", "Project", "Vote", "parse"]

_SECTIONS = ("META", "PROJECTS", "VOTES")
MAX_FIELD_CHARS = 131_072
_INTEGER = re.compile(r"-?[0-9]+")  # [0-9] is ASCII only, unlike \d or int()
_DECIMAL = re.compile(r"(-?[0-9]+)(?:\.([0-9]+))?")


@dataclass(frozen=True)
class Project:
    """One project row.

    Attributes:
        project_id: the id, as written in the file.
        cost: its cost (an integer).
        fields: every other column of the row, as text (e.g. ``name``, ``votes``).
        line: the line the row starts on (for messages).
    """

    project_id: str
    cost: int
    fields: Mapping[str, str]
    line: int = field(default=0, compare=False)

    @property
    def selected(self) -> bool | None:
        """The official outcome if the file records one (``selected`` column)."""
        value = self.fields.get("selected", "").strip()
        return None if value == "" else value not in ("0", "false", "False")


@dataclass(frozen=True)
class Vote:
    """One ballot row.

    Attributes:
        voter_id: the voter id, as written in the file.
        vote: the project ids in file order (for ordinal ballots, best first).
        points: the ``points`` column as integers, aligned with ``vote``, or None.
        fields: every other column of the row, as text (e.g. ``age``, ``sex``).
        line: the line the row starts on (for messages).
    """

    voter_id: str
    vote: tuple[str, ...]
    points: tuple[int, ...] | None
    fields: Mapping[str, str]
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Instance:
    """A parsed ``.pb`` file.

    Attributes:
        meta: the META section, key -> value text.
        budget: the ``budget`` meta entry as an integer.
        projects: project id -> :class:`Project`, in file order.
        votes: the ballots, in file order.
        meta_lines: meta key -> the line it is on (for messages).
    """

    meta: Mapping[str, str]
    budget: int
    projects: Mapping[str, Project]
    votes: tuple[Vote, ...]
    meta_lines: Mapping[str, int] = field(default_factory=dict, compare=False)

    @property
    def costs(self) -> Mapping[str, int]:
        """Project id -> cost, ready for :mod:`node.governance.budget`."""
        return MappingProxyType({p.project_id: p.cost for p in self.projects.values()})

    @property
    def approval_ballots(self) -> tuple[frozenset[str], ...]:
        """Each vote as a set of approved project ids."""
        return tuple(frozenset(v.vote) for v in self.votes)

    @property
    def selected(self) -> frozenset[str]:
        """Ids of the projects the file marks as selected (the official outcome)."""
        return frozenset(p.project_id for p in self.projects.values() if p.selected)


def parse(text: str) -> Instance:
    """Parse the text of a pabulib ``.pb`` file.

    Args:
        text: the whole file (a leading byte-order mark is ignored).

    Returns:
        The frozen :class:`Instance`.

    Raises:
        PabulibError: if a section is missing, duplicated or out of order, a row has
            the wrong number of columns, a quoted cell is never closed, a cell is
            longer than 131,072 characters, a cost/budget/points value is not an
            integer, a cost or the budget is negative, an id repeats, a vote names an
            unknown project, or a ``num_projects`` / ``num_votes`` entry disagrees
            with the rows.
    """
    sections = _split(_rows(text.removeprefix("\ufeff")))
    meta, meta_lines = _meta(sections["META"])
    projects = _projects(sections["PROJECTS"])
    votes = _votes(sections["VOTES"], projects)
    if "budget" not in meta:
        raise PabulibError(sections["META"][0][0], "META has no 'budget' entry")
    budget = _integer(meta["budget"], meta_lines["budget"], "budget", exact=False)
    if budget < 0:
        raise PabulibError(meta_lines["budget"], f"budget {budget} is negative")
    for key, count in (("num_projects", len(projects)), ("num_votes", len(votes))):
        if key in meta:
            declared = _integer(meta[key], meta_lines[key], key)
            if declared != count:
                raise PabulibError(
                    meta_lines[key], f"{key} is {declared} but there are {count} rows"
                )
    return Instance(
        meta=MappingProxyType(meta),
        budget=budget,
        projects=MappingProxyType(projects),
        votes=tuple(votes),
        meta_lines=MappingProxyType(meta_lines),
    )


_Rows = list[tuple[int, list[str]]]


def _rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """The CSV rows of the file as (line the row starts on, cells), blank lines left out.

    Rows without a quote (nearly all) are split directly; a row with a quoted cell
    goes through `_quoted_row`, which may consume further lines.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        if '"' in line:
            cells, after = _quoted_row(lines, i)
        else:
            if not line.strip():
                i += 1
                continue
            cells, after = line.split(";"), i + 1
        for cell in cells:
            if len(cell) > MAX_FIELD_CHARS:
                raise PabulibError(
                    i + 1,
                    f"a cell of {len(cell):,} characters; a pabulib cell holds at most "
                    f"{MAX_FIELD_CHARS:,}",
                )
        yield i + 1, cells
        i = after


def _quoted_row(lines: list[str], first: int) -> tuple[list[str], int]:
    """Read one row that holds a quote; returns its cells and the index of the next line.

    A cell is quoted only if its first character is ``"`` (as in the ``csv`` module); a
    quote anywhere else is an ordinary character.
    """
    cells: list[str] = []
    j, line, pos = first, lines[first], 0
    while True:
        if line.startswith('"', pos):
            pos += 1
            parts: list[str] = []
            size = 0
            while True:
                q = line.find('"', pos)
                if q < 0:
                    parts.append(line[pos:])
                    parts.append("\n")
                    size += len(line) - pos + 1
                    j += 1
                    if j >= len(lines) or size > MAX_FIELD_CHARS:
                        what = (
                            "longer than 131,072 characters" if j < len(lines) else "never closed"
                        )
                        raise PabulibError(first + 1, f"a quoted cell starting here is {what}")
                    line, pos = lines[j], 0
                    continue
                parts.append(line[pos:q])
                size += q - pos
                if line.startswith('"', q + 1):  # "" stands for one quote
                    parts.append('"')
                    pos = q + 2
                    continue
                pos = q + 1
                break
            value = "".join(parts)
            end = line.find(";", pos)
            rest = line[pos:] if end < 0 else line[pos:end]
            if rest.strip():
                raise PabulibError(
                    first + 1, f"text {rest.strip()[:20]!r} after the closing quote of a cell"
                )
        else:
            end = line.find(";", pos)
            value = line[pos:] if end < 0 else line[pos:end]
        cells.append(value)
        if end < 0:
            return cells, j + 1
        pos = end + 1


def _split(file_rows: Iterator[tuple[int, list[str]]]) -> dict[str, _Rows]:
    """Cut the file into sections of (line number, cells) rows, header row first."""
    sections: dict[str, _Rows] = {}
    current: _Rows | None = None
    for number, cells in file_rows:
        name = cells[0].strip() if len(cells) == 1 else ""
        if name in _SECTIONS:
            if name in sections:
                raise PabulibError(number, f"section {name} appears twice")
            expected = _SECTIONS[len(sections)]
            if name != expected:
                raise PabulibError(number, f"section {name} found where {expected} belongs")
            current = sections[name] = [(number, [])]
            continue
        if current is None:
            raise PabulibError(number, "text before the META section")
        current.append((number, [c.strip() for c in cells]))
    for name in _SECTIONS:
        if name not in sections:
            raise PabulibError(0, f"section {name} is missing")
        rows = sections[name]
        if len(rows) < 2:
            raise PabulibError(rows[0][0], f"section {name} has no header row")
        # Drop the placeholder of the section line itself, keep the header row.
        sections[name] = rows[1:]
    return sections


def _table(
    rows: _Rows, required: tuple[str, ...], section: str
) -> list[tuple[int, dict[str, str]]]:
    (header_line, header), body = rows[0], rows[1:]
    if len(set(header)) != len(header):
        raise PabulibError(header_line, f"{section} header repeats a column")
    for column in required:
        if column not in header:
            raise PabulibError(header_line, f"{section} header has no '{column}' column")
    table = []
    for number, cells in body:
        if len(cells) != len(header):
            raise PabulibError(
                number, f"expected {len(header)} columns ({';'.join(header)}), got {len(cells)}"
            )
        table.append((number, dict(zip(header, cells, strict=True))))
    return table


def _meta(rows: _Rows) -> tuple[dict[str, str], dict[str, int]]:
    meta: dict[str, str] = {}
    lines: dict[str, int] = {}
    for number, row in _table(rows, ("key", "value"), "META"):
        key = row["key"]
        if key in meta:
            raise PabulibError(number, f"meta key '{key}' appears twice")
        meta[key] = row["value"]
        lines[key] = number
    return meta, lines


def _projects(rows: _Rows) -> dict[str, Project]:
    projects: dict[str, Project] = {}
    for number, row in _table(rows, ("project_id", "cost"), "PROJECTS"):
        pid = row.pop("project_id")
        if not pid:
            raise PabulibError(number, "empty project_id")
        if pid in projects:
            raise PabulibError(number, f"project_id '{pid}' appears twice")
        cost = _integer(row.pop("cost"), number, "cost")
        if cost < 0:
            raise PabulibError(number, f"cost {cost} is negative")
        projects[pid] = Project(pid, cost, MappingProxyType(row), number)
    return projects


def _votes(rows: _Rows, projects: Mapping[str, Project]) -> list[Vote]:
    votes: list[Vote] = []
    seen: set[str] = set()
    for number, row in _table(rows, ("voter_id", "vote"), "VOTES"):
        voter = row.pop("voter_id")
        if voter in seen:
            raise PabulibError(number, f"voter_id '{voter}' appears twice")
        seen.add(voter)
        vote = _list(row.pop("vote"))
        if len(set(vote)) != len(vote):
            raise PabulibError(number, "vote lists a project twice")
        for pid in vote:
            if pid not in projects:
                raise PabulibError(number, f"vote names unknown project '{pid}'")
        points = None
        if "points" in row:
            points = tuple(_integer(p, number, "points") for p in _list(row.pop("points")))
            if len(points) != len(vote):
                raise PabulibError(number, f"{len(points)} points for {len(vote)} voted projects")
        votes.append(Vote(voter, vote, points, MappingProxyType(row), number))
    return votes


def _list(cell: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in cell.split(",")) if cell.strip() else ()


def _integer(text: str, line: int, what: str, *, exact: bool = True) -> int:
    """Parse an integer of ASCII digits; with ``exact=False`` also ``100000.0``-style
    text whose fraction is zero."""
    m = (_INTEGER if exact else _DECIMAL).fullmatch(text)
    if m is not None and (exact or not (m.group(2) or "").strip("0")):
        return int(m.group(0) if exact else m.group(1))
    raise PabulibError(line, f"{what} {text!r} is not an integer")
