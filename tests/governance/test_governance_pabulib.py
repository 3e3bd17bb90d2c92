"""The pabulib parser: real files parse, malformed lines are reported by number."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.governance.errors import GovernanceError, PabulibError
from node.governance.pabulib import parse

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pabulib"

GOOD = """\
META
key;value
description;tiny
num_projects;2
num_votes;2
budget;10
vote_type;cumulative
PROJECTS
project_id;cost;name;selected
p1;4;"One; with semicolon";1
p2;7;Two;0
VOTES
voter_id;vote;points;age
a;p1,p2;3,2;30
b;;;41
"""


def test_parse_small_file():
    inst = parse(GOOD)
    assert inst.budget == 10
    assert inst.meta["vote_type"] == "cumulative"
    assert list(inst.projects) == ["p1", "p2"]
    assert inst.projects["p1"].cost == 4
    assert inst.projects["p1"].fields["name"] == "One; with semicolon"
    assert inst.selected == {"p1"}
    assert inst.votes[0].vote == ("p1", "p2")
    assert inst.votes[0].points == (3, 2)
    assert inst.votes[0].fields == {"age": "30"}
    assert inst.votes[1].vote == ()
    assert inst.approval_ballots == (frozenset({"p1", "p2"}), frozenset())
    assert dict(inst.costs) == {"p1": 4, "p2": 7}


def test_bom_and_blank_lines_are_ignored():
    assert parse("\ufeff" + GOOD.replace("PROJECTS\n", "\nPROJECTS\n")).budget == 10


def test_selected_absent_is_none():
    inst = parse(GOOD.replace(";selected", "").replace(";1\n", "\n").replace(";0\n", "\n"))
    assert inst.projects["p1"].selected is None
    assert inst.selected == frozenset()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("p1;4;", "p1;abc;", "line 10: cost 'abc' is not an integer"),
        ("p2;7;", "p2;-7;", "line 11: cost -7 is negative"),
        ("p2;7;", "p1;7;", "line 11: project_id 'p1' appears twice"),
        ("p2;7;Two;0", "p2;7;Two", "line 11: expected 4 columns"),
        ("a;p1,p2;3,2", "a;p1,p3;3,2", "line 14: vote names unknown project 'p3'"),
        ("a;p1,p2;3,2", "a;p1,p1;3,2", "line 14: vote lists a project twice"),
        ("3,2;30", "3,x;30", "line 14: points 'x' is not an integer"),
        ("3,2;30", "3;30", "line 14: 1 points for 2 voted projects"),
        ("b;;;41", "a;;;41", "line 15: voter_id 'a' appears twice"),
        ("num_votes;2", "num_votes;3", "line 5: num_votes is 3 but there are 2 rows"),
        ("budget;10", "budget;ten", "line 6: budget 'ten' is not an integer"),
        ("budget;10", "budget;10.5", "line 6: budget '10.5' is not an integer"),
        ("budget;10", "spending;10", "line 2: META has no 'budget' entry"),
        ("description;tiny", "budget;11", "line 6: meta key 'budget' appears twice"),
        ("project_id;cost", "id;cost", "line 9: PROJECTS header has no 'project_id' column"),
        ("VOTES\n", "", "section VOTES is missing"),
        ("META\n", "junk\n", "line 1: text before the META section"),
        ("PROJECTS\nproject_id", "VOTES\nproject_id", "line 8: section VOTES found where"),
    ],
)
def test_malformed_lines_are_reported(old, new, message):
    assert old in GOOD
    with pytest.raises(PabulibError) as info:
        parse(GOOD.replace(old, new, 1))
    assert message in str(info.value)
    assert isinstance(info.value, GovernanceError)
    assert isinstance(info.value, ValueError)


def test_decimal_budget_that_is_whole_is_accepted():
    assert parse(GOOD.replace("budget;10", "budget;10.0")).budget == 10


def test_header_only_section_is_an_error():
    with pytest.raises(PabulibError, match=r"line 12: section VOTES has no header row"):
        parse(GOOD.split("VOTES")[0] + "VOTES\n")


@pytest.mark.parametrize(
    ("name", "projects", "votes", "selected"),
    [("Netherlands_Assen_2024.pb", 14, 84, 9), ("Netherlands_Assen_2025.pb", 32, 332, 13)],
)
def test_parse_assen(name, projects, votes, selected):
    path = DATA / name
    if not path.is_file():
        pytest.fail(f"reference data {path} is missing", pytrace=False)
    inst = parse(path.read_text(encoding="utf-8"))
    assert inst.budget == 100_000
    assert len(inst.projects) == projects
    assert len(inst.votes) == votes
    assert len(inst.selected) == selected
