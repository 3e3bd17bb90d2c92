"""The match, commitment and track-record renderings (pure) read as intended."""

from io import StringIO

from rich.console import Console

from cli import match_cmd

A, B = "aa" * 32, "bb" * 32


def text(renderable):
    out = StringIO()
    Console(file=out, width=120, color_system=None).print(renderable)
    return out.getvalue()


def test_matches_render_both_levels_and_say_when_empty():
    m = {
        "item": "potatoes",
        "period": "2027-Q1",
        "provider": B,
        "provider_name": "Hof B",
        "receiver": A,
        "receiver_name": "",
        "qty": "42.857143",
        "unit": "kg",
        "scope": "eu/de/berlin",
    }
    out = text(
        match_cmd.render_matches({"scope": "eu", "within_region": [m], "across_regions": []})
    )
    assert "Node to node under eu" in out
    assert "Hof B (bbbbbbbb)" in out
    assert "42.857143 kg" in out
    assert "Region to region" not in out
    assert "Their track records" not in out
    record = {
        "node": B,
        "name": "Hof B",
        "committed": 3,
        "delivered": 2,
        "confirmed": 1,
        "on_time": 1,
        "overdue": 2,
        "disputed": 1,
        "cancelled": 0,
        "received": 0,
        "share": "0.3333",
    }
    with_records = text(
        match_cmd.render_matches(
            {"scope": "eu", "within_region": [m], "across_regions": [], "track_records": [record]}
        )
    )
    assert "Their track records" in with_records
    (line,) = [x for x in with_records.splitlines() if "Hof B" in x and "0.3333" in x]
    assert line.split()[-8:] == ["3", "2", "1", "1", "2", "1", "0", "0.3333"]
    empty = {"scope": "eu/de", "within_region": [], "across_regions": []}
    assert "No matches under eu/de" in text(match_cmd.render_matches(empty))


def test_track_record_renders_counts_and_share():
    data = {
        "today": "2027-04-01",
        "nodes": [
            {
                "node": B,
                "name": "Hof B",
                "committed": 2,
                "delivered": 1,
                "confirmed": 1,
                "on_time": 1,
                "overdue": 1,
                "disputed": 0,
                "cancelled": 0,
                "received": 0,
                "share": "0.5",
            }
        ],
    }
    out = text(match_cmd.render_track_record(data))
    assert "Hof B" in out
    assert "0.5" in out
    assert "as of 2027-04-01" in out
    assert "No commitments" in text(match_cmd.render_track_record({"today": "x", "nodes": []}))


def test_commitments_render_short_ids_and_their_deliveries():
    digest = "0123456789abcdef" * 2
    row = {
        "id": f"{B}.oab12c-{digest}",
        "state": "committed",
        "provider": B,
        "provider_name": "Hof B",
        "receiver": A,
        "receiver_name": "Mensa",
        "item": "potatoes",
        "qty": "50",
        "unit": "kg",
        "period": "2027-Q1",
        "due": "2027-03-31",
        "deliveries": [
            {"id": f"dx9y8z-{digest}", "qty": "30", "unit": "kg", "date": "2027-02-01",
             "status": "disputed", "reason": "only 20 kg"},
        ],
    }  # fmt: skip
    out = text(match_cmd.render_commitments([row]))
    assert digest not in out  # the ids as the commands take them: the short ones
    (line,) = [x for x in out.splitlines() if "oab12c" in x and "committed" in x]
    assert line.split()[:2] == ["oab12c", "committed"]
    (line,) = [x for x in out.splitlines() if "dx9y8z" in x]
    assert line.split() == [
        "dx9y8z",
        "oab12c",
        "30",
        "kg",
        "2027-02-01",
        "disputed:",
        "only",
        "20",
        "kg",
    ]
    assert "delivery" not in text(match_cmd.render_commitments([row | {"deliveries": []}]))
