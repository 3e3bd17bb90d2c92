"""The pabulib parser: real files parse, malformed lines are reported by number."""

from __future__ import annotations

import re
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


# --- exactness (issue 18.4): each case an error naming its line, or parsed as meant ----


def test_a_cell_over_the_csv_field_limit_names_its_line():
    long = "x" * 131_073
    with pytest.raises(PabulibError, match=r"line 11: a cell of 131,073 characters"):
        parse(GOOD.replace("p2;7;Two;0", f"p2;7;{long};0"))
    with pytest.raises(PabulibError, match=r"line 11: a cell of 131,073 characters"):
        parse(GOOD.replace("p2;7;Two;0", f'p2;7;"{long}";0'))
    # A quoted cell spanning lines is counted as it grows.
    spread = "\n".join(["y" * 1000] * 140)
    with pytest.raises(PabulibError, match=r"line 11: a quoted cell starting here is longer"):
        parse(GOOD.replace("p2;7;Two;0", f'p2;7;"{spread}";0'))
    assert parse(GOOD.replace("Two", "x" * 131_072)).projects["p2"].fields["name"] == "x" * 131_072


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85", "\x0c", "\x0b", "\x1c", "\x1e"])
def test_unicode_line_separators_are_characters_of_a_cell(char):
    # str.splitlines() breaks at each of these; pabulib (csv over newline="") does not.
    text = GOOD.replace('"One; with semicolon"', f'"One{char}two"').replace(
        "p2;7;Two;0", f"p2;7;T{char}wo;0"
    )
    inst = parse(text)
    assert inst.projects["p1"].fields["name"] == f"One{char}two"
    assert inst.projects["p2"].fields["name"] == f"T{char}wo"
    # Line numbers do not shift either.
    with pytest.raises(PabulibError, match=r"line 14: vote names unknown project 'p3'"):
        parse(text.replace("a;p1,p2;3,2", "a;p1,p3;3,2"))


def test_quoted_multi_line_cells_are_one_cell():
    text = GOOD.replace('"One; with semicolon"', '"One\nwith ""quotes""\r\nand lines"')
    inst = parse(text)
    assert inst.projects["p1"].fields["name"] == 'One\nwith "quotes"\nand lines'
    assert inst.projects["p2"].line == 13
    # Errors name the line a row starts on, after the rows that span lines.
    with pytest.raises(PabulibError, match=r"line 16: vote names unknown project 'p3'"):
        parse(text.replace("a;p1,p2;3,2", "a;p1,p3;3,2"))
    with pytest.raises(PabulibError, match=r"line 11: expected 4 columns"):
        parse(GOOD.replace("p2;7;Two;0", 'p2;7;"Two\nlines"'))


def test_unclosed_quotes_and_text_after_a_quote_name_the_line():
    with pytest.raises(PabulibError, match=r"line 11: a quoted cell starting here is never"):
        parse(GOOD.replace("p2;7;Two;0", 'p2;7;"Two;0'))
    with pytest.raises(PabulibError, match=r"line 11: text 'x' after the closing quote"):
        parse(GOOD.replace("p2;7;Two;0", 'p2;7;"Two"x;0'))
    # Blanks after the closing quote are fine; a quote inside a cell is a character.
    inst = parse(GOOD.replace("p2;7;Two;0", 'p2;7;"Two"  ;0').replace("One; with", "On"))
    assert inst.projects["p2"].fields["name"] == "Two"
    assert parse(GOOD.replace("Two", 'T"w"o')).projects["p2"].fields["name"] == 'T"w"o'


@pytest.mark.parametrize(
    "cost", ["5_0", "+50", "\u0665\u0660", "\uff15\uff10", "5 0", "50.0", "0x32", "\u00b2"]
)
def test_costs_are_ascii_digits_only(cost):
    # int() takes 5_0, +50 and non-ASCII digits; pabulib's costs are plain numbers.
    with pytest.raises(PabulibError, match=re.escape(f"line 11: cost {cost!r} is not an integer")):
        parse(GOOD.replace("p2;7;", f"p2;{cost};"))


@pytest.mark.parametrize("value", ["+10", "1_0", "\u0661\u0660", "1e1", "10.5", "10."])
def test_budget_and_counts_are_ascii_digits_only(value):
    with pytest.raises(PabulibError, match=r"line 6: budget .* is not an integer"):
        parse(GOOD.replace("budget;10", f"budget;{value}"))
    with pytest.raises(PabulibError, match=r"line 5: num_votes .* is not an integer"):
        parse(GOOD.replace("num_votes;2", f"num_votes;{value.replace('10', '2')}"))
    assert parse(GOOD.replace("budget;10", "budget;10.000")).budget == 10


def test_points_are_ascii_digits_only():
    with pytest.raises(PabulibError, match=r"line 14: points '\+3' is not an integer"):
        parse(GOOD.replace("3,2;30", "+3,2;30"))


def test_a_negative_budget_names_its_line():
    with pytest.raises(PabulibError, match=r"line 6: budget -10 is negative"):
        parse(GOOD.replace("budget;10", "budget;-10"))


def test_crlf_and_cr_line_ends():
    assert parse(GOOD.replace("\n", "\r\n")).budget == 10
    assert parse(GOOD.replace("\n", "\r")).budget == 10
