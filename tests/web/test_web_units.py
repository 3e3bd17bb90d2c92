"""The web app's parts without a daemon: config, token file, CLI, page escaping,
charts, and the static files a non-editable install must carry."""

from __future__ import annotations

import stat
import tomllib
from fnmatch import fnmatch
from fractions import Fraction
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from cli.main import cli
from node.config import Config
from node.errors import LocalError
from web import charts, gov_pages, html, pages
from web.security import Csrf, ensure_token, is_operator, new_token, operator_session

ROOT = Path(__file__).parents[2]


def test_web_config_round_trips_and_defaults_to_loopback():
    c = Config(name="n")
    assert (c.web, c.web_host, c.web_port) == (True, "127.0.0.1", 7947)
    lan = Config(name="n", web_host="0.0.0.0", web_port=8080, web=False)
    again = Config.from_toml(lan.to_toml())
    assert (again.web, again.web_host, again.web_port) == (False, "0.0.0.0", 8080)


@pytest.mark.parametrize(
    ("host", "port", "message"),
    [("localhost", 7947, "IP address"), ("127.0.0.1", 70000, "port"), ("", 1, "IP address")],
)
def test_bad_web_config_is_refused(host, port, message):
    with pytest.raises(LocalError, match=message):
        Config(name="n", web_host=host, web_port=port).check()


def test_token_file_is_private_and_stable(tmp_path: Path):
    path = tmp_path / "web.token"
    t = ensure_token(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_token(path) == t
    assert len(t) == 64
    t2 = new_token(path)
    assert t2 != t
    assert is_operator(t2, operator_session(t2))
    assert not is_operator(t2, operator_session(t))  # a new token ends old sessions
    assert not is_operator(None, operator_session(t2))


def test_csrf_value_is_bound_to_its_cookie_and_process():
    a, b = Csrf(), Csrf()
    cookie = Csrf.new_cookie()
    assert a.check(cookie, a.value(cookie))
    assert not a.check(Csrf.new_cookie(), a.value(cookie))
    assert not b.check(cookie, a.value(cookie))  # another daemon run
    assert not a.check(None, a.value(cookie))
    assert not a.check(cookie, None)


def test_web_token_command(tmp_path: Path):
    runner = CliRunner()
    dd = tmp_path / "n"
    missing = runner.invoke(cli, ["--data-dir", str(dd), "web", "token"])
    assert missing.exit_code == 1
    assert "allmende init" in missing.output
    assert not (dd / "web.token").exists()
    assert (
        runner.invoke(
            cli, ["--data-dir", str(dd), "init", "--name", "n", "--scope", "eu/de", "--no-mdns"]
        ).exit_code
        == 0
    )
    first = runner.invoke(cli, ["--data-dir", str(dd), "web", "token"]).output.strip()
    assert runner.invoke(cli, ["--data-dir", str(dd), "web", "token"]).output.strip() == first
    new = runner.invoke(cli, ["--data-dir", str(dd), "web", "token", "--new"]).output.strip()
    assert new != first
    assert (dd / "web.token").read_text().strip() == new
    url = runner.invoke(cli, ["--data-dir", str(dd), "web", "url"])
    assert url.exit_code == 1
    assert "not running" in url.output


HOSTILE = "<script>alert(1)</script>\"'&"


def test_record_text_is_escaped_on_every_page():
    prop = {
        "proposal": HOSTILE,
        "title": HOSTILE,
        "text": HOSTILE,
        "method": "approval",
        "phase": "open",
        "electorate": "eu",
        "votes_held": 0,
        "options": [{"id": HOSTILE, "name": HOSTILE}],
    }
    results = {
        "status": "provisional",
        "counted": 0,
        "method": "approval",
        "winners": [HOSTILE],
        "problem": HOSTILE,
        "detail": {"options": [{"id": HOSTILE, "name": HOSTILE, "count": 1}]},
    }
    out = gov_pages.proposal_page(prop, results, "")
    out += gov_pages.proposals_page([{**prop, "scope": HOSTILE}])
    out += html.layout(HOSTILE, "", csrf=HOSTILE, here="/")
    row = {
        "scope": "eu",
        "item": HOSTILE,
        "period": HOSTILE,
        "unit": HOSTILE,
        "needs": "1",
        "capacities": "0",
        "balance": "-1",
        "coverage": "0",
        "nodes": 1,
    }
    out += pages.balance_page(
        {"scope": "eu", "levels": [{"scope": "eu", "level": 0, "rows": [row], "basis": None}]},
        {"period": HOSTILE},
    )
    assert "<script>alert" not in out
    assert "&lt;script&gt;" in out


def test_balance_lists_deficits_first():
    def row(item: str, needs: str, caps: str) -> dict:
        bal = str(Fraction(caps) - Fraction(needs))
        return {
            "scope": "eu",
            "item": item,
            "period": "2027",
            "unit": "kg",
            "needs": needs,
            "capacities": caps,
            "balance": bal,
            "coverage": None,
            "nodes": 1,
        }

    rows = [row("surplus", "1", "5"), row("half", "10", "5"), row("none", "4", "0")]
    html = pages.balance_page(
        {"scope": "eu", "levels": [{"scope": "eu", "level": 0, "rows": rows, "basis": None}]}, {}
    )
    assert html.index(">none") < html.index(">half") < html.index(">surplus")
    assert html.count('class="deficit"') == 2


@given(needs=st.integers(0, 10**6), caps=st.integers(0, 10**6), top_extra=st.integers(0, 10**6))
def test_bars_are_proportional_and_deterministic(needs, caps, top_extra):
    top = Fraction(max(needs, caps) + top_extra)
    svg = charts.need_capacity_bar(str(needs), str(caps), top, "x")
    assert svg == charts.need_capacity_bar(str(needs), str(caps), top, "x")
    widths = [int(w) for w in __import__("re").findall(r'width="(\d+)"', svg)]
    assert all(0 <= w <= charts.WIDTH for w in widths)
    if needs > caps:
        assert 'class="short"' in svg
        assert widths[0] >= widths[1]


def test_static_files_ship_in_the_package():
    """A non-editable install carries every asset (package data in pyproject.toml)."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = meta["tool"]["setuptools"]["package-data"]["web"]
    assert "web*" in meta["tool"]["setuptools"]["packages"]["find"]["include"]
    files = [p.relative_to(ROOT / "web").as_posix() for p in (ROOT / "web/static").iterdir()]
    assert files
    for f in files:
        assert any(fnmatch(f, g) for g in globs), f"{f} would be left out of a wheel"


def test_plan_page_shows_matches_commitments_and_track_records_escaped():
    key = "ab" * 32
    matches = {
        "scope": "eu",
        "within_region": [
            {
                "item": HOSTILE,
                "period": "2027",
                "provider": key,
                "provider_name": HOSTILE,
                "receiver": key,
                "receiver_name": None,
                "qty": "5",
                "unit": "kg",
                "scope": "eu",
            }
        ],
        "across_regions": [],
    }
    commitments = [
        {
            "state": "accepted",
            "provider": key,
            "provider_name": "p",
            "receiver": key,
            "receiver_name": "r",
            "item": "milk",
            "period": "2027",
            "qty": "3",
            "unit": "l",
            "due": "2027-01-01",
            "deliveries": [{"status": "confirmed"}, {"status": "open"}],
        }
    ]
    track = {
        "today": "2026-12-05",
        "nodes": [
            {
                "node": key,
                "name": "p",
                "committed": 1,
                "delivered": 1,
                "confirmed": 1,
                "on_time": 1,
                "overdue": 0,
                "disputed": 0,
                "share": "1",
            }
        ],
    }
    html = pages.plan_page(matches, commitments, track)
    assert "<script>alert" not in html
    assert "Node to node under eu" in html
    assert ">accepted<" in html
    assert "<td>2</td><td>1</td>" in html  # two deliveries, one confirmed
    empty = pages.plan_page({"scope": "eu"}, [], {"nodes": []})
    assert "No matches under eu" in empty
    assert "No offers or commitments." in empty


class _NoNode:
    """A backend for pages that ask the node nothing."""

    token_path = Path("/nonexistent/web.token")

    async def call(self, op, args):
        raise AssertionError(f"unexpected op {op}")

    def version(self) -> int:
        return 0

    def now_ms(self) -> int:
        return 0

    def traffic(self) -> tuple[int, int]:
        return (0, 0)


def _asgi_get(app, host: str, path: str) -> tuple[int, dict[str, str]]:
    """One GET through the ASGI app under trio, as Hypercorn would make it."""
    import trio

    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", host.encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 7947),
    }
    trio.run(app, scope, receive, send)
    start = sent[0]
    headers: dict[str, str] = {}
    for k, v in start["headers"]:
        headers[k.decode()] = headers.get(k.decode(), "") + v.decode()
    return start["status"], headers


@pytest.mark.parametrize(
    ("loopback_only", "host", "status"),
    [
        (True, "127.0.0.1:7947", 200),
        (True, "localhost:7947", 200),
        (True, "[::1]:7947", 200),
        (True, "localhost", 200),
        (True, "192.168.1.5:7947", 400),
        (True, "127.0.0.1.evil.example", 400),
        (True, "", 400),
        (False, "192.168.1.5:7947", 200),
    ],
)
def test_host_names_while_on_loopback_only(loopback_only, host, status):
    from web.app import build_app

    app = build_app(_NoNode(), loopback_only=loopback_only)
    got, headers = _asgi_get(app, host, "/member")
    assert got == status
    assert "frame-ancestors 'none'" in headers.get("content-security-policy", "") or status == 400
    if status == 200:
        assert "allmende_csrf=" in headers["set-cookie"]
        assert "samesite=strict" in headers["set-cookie"].lower()
