"""Parser for the pabulib ``.pb`` participatory-budgeting format (pabulib.org).

A file has three sections, each introduced by a line holding only its name::

    META                      PROJECTS                     VOTES
    key;value                 project_id;cost;...          voter_id;vote;...
    budget;100000             3;7200;...                   v01;1,2,6

Each section is semicolon-separated CSV whose first row is a header. ``vote`` (and
``points``, if present) hold comma-separated lists. The parser is pure: it takes the
text, never a path, and any malformed line raises :class:`PabulibError` naming the
line (1-based) and the problem.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType

from node.governance.errors import PabulibError

__all__ = ["Instance", "PabulibError", "Project", "Vote", "parse"]

_SECTIONS = ("META", "PROJECTS", "VOTES")


@dataclass(frozen=True)
class Project:
    """One project row.

    Attributes:
        project_id: the id, as written in the file.
        cost: its cost (an integer).
        fields: every other column of the row, as text (e.g. ``name``, ``votes``).
    """

    project_id: str
    cost: int
    fields: Mapping[str, str]

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
    """

    voter_id: str
    vote: tuple[str, ...]
    points: tuple[int, ...] | None
    fields: Mapping[str, str]


@dataclass(frozen=True)
class Instance:
    """A parsed ``.pb`` file.

    Attributes:
        meta: the META section, key -> value text.
        budget: the ``budget`` meta entry as an integer.
        projects: project id -> :class:`Project`, in file order.
        votes: the ballots, in file order.
    """

    meta: Mapping[str, str]
    budget: int
    projects: Mapping[str, Project]
    votes: tuple[Vote, ...]

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
            the wrong number of columns, a cost/budget/points value is not an integer,
            an id repeats, a vote names an unknown project, or a ``num_projects`` /
            ``num_votes`` entry disagrees with the rows.
    """
    sections = _split(text.removeprefix("\ufeff").splitlines())
    meta, meta_lines = _meta(sections["META"])
    projects = _projects(sections["PROJECTS"])
    votes = _votes(sections["VOTES"], projects)
    if "budget" not in meta:
        raise PabulibError(sections["META"][0][0], "META has no 'budget' entry")
    budget = _integer(meta["budget"], meta_lines["budget"], "budget", exact=False)
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
    )


_Rows = list[tuple[int, list[str]]]


def _split(lines: Iterable[str]) -> dict[str, _Rows]:
    """Cut the file into sections of (line number, cells) rows, header row first."""
    sections: dict[str, _Rows] = {}
    current: _Rows | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        name = line.strip()
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
        cells = next(csv.reader([line], delimiter=";"))
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
        projects[pid] = Project(pid, cost, MappingProxyType(row))
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
        votes.append(Vote(voter, vote, points, MappingProxyType(row)))
    return votes


def _list(cell: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in cell.split(",")) if cell.strip() else ()


def _integer(text: str, line: int, what: str, *, exact: bool = True) -> int:
    """Parse an integer; with ``exact=False`` also accept ``100000.0``-style text."""
    try:
        return int(text)
    except ValueError:
        pass
    if not exact:
        try:
            value = Fraction(text)
        except ValueError:
            value = None
        if value is not None and value.denominator == 1:
            return int(value)
    raise PabulibError(line, f"{what} {text!r} is not an integer")
