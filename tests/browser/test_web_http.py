"""The web app's rules over plain HTTP (no browser): no state change without the
CSRF value, no operator action without the token, foreign hosts and origins refused,
and member records checked like any record from the network before they are kept."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
from harness import Node
from procs import wait_for

from node.governance.member_sign import sign_member_record
from node.identity import generate
from web.security import operator_session

pytestmark = pytest.mark.slow

FORM = {"kind": "need", "item": "milk", "qty": "5", "unit": "l", "period": "2027-Q4"}


def _csrf(c: httpx.Client) -> str:
    html = c.get("/operator").text
    return re.search(r'<meta name="csrf" content="([0-9a-f]+)">', html).group(1)


def _milk(a: Node) -> list[dict]:
    return [r for r in a.call("list", kind="need") if r["item"] == "milk"]


def _client(a: Node, **kw) -> httpx.Client:
    return httpx.Client(base_url=a.web_url, follow_redirects=False, **kw)


def test_operator_post_needs_both_csrf_and_token(pair):
    a, _ = pair
    token = a.cli("web", "token").strip()
    op = operator_session(token)
    with _client(a) as bare:
        assert bare.post("/operator/post", data=FORM).status_code == 403
    with _client(a, cookies={"allmende_operator": op}) as no_csrf:
        assert no_csrf.post("/operator/post", data=FORM).status_code == 403
    with _client(a) as no_token:
        csrf = _csrf(no_token)
        r = no_token.post("/operator/post", data={**FORM, "csrf": csrf})
        assert r.status_code == 403
        assert "sign in" in r.text
    with _client(a) as other, _client(a) as mine:
        # A CSRF value made for another browser's cookie does not fit this one.
        stolen = _csrf(other)
        _csrf(mine)
        mine.cookies.set("allmende_operator", op)
        assert mine.post("/operator/post", data={**FORM, "csrf": stolen}).status_code == 403
    assert _milk(a) == []
    with _client(a) as good:
        csrf = _csrf(good)
        r = good.post("/operator/login", data={"csrf": csrf, "token": token})
        assert r.status_code == 303
        # Another site's page posting with this browser's cookies is refused.
        evil = good.post(
            "/operator/post",
            data={**FORM, "csrf": csrf},
            headers={"origin": "http://evil.example"},
        )
        assert evil.status_code == 403
        assert _milk(a) == []
        r = good.post("/operator/post", data={**FORM, "csrf": csrf})
        assert r.status_code == 303, r.text
        assert len(_milk(a)) == 1
        # A new token signs every browser out.
        a.cli("web", "token", "--new")
        r = good.post("/operator/withdraw", data={"csrf": csrf, "kind": "need", "key": "x"})
        assert r.status_code == 403


def test_wrong_token_is_refused(pair):
    a, _ = pair
    with _client(a) as c:
        csrf = _csrf(c)
        r = c.post("/operator/login", data={"csrf": csrf, "token": "0" * 64})
        assert r.status_code == 403
        assert "allmende_operator" not in c.cookies


def test_foreign_host_header_is_refused(pair):
    """While it listens on loopback only, a page of a rebound DNS name gets nothing."""
    a, _ = pair
    with _client(a) as c:
        assert c.get("/", headers={"host": "evil.example"}).status_code == 400
        ok = c.get("/")
        assert ok.status_code == 200
        assert "script-src 'self'" in ok.headers["content-security-policy"]
        assert ok.headers["x-content-type-options"] == "nosniff"


def _submit(c: httpx.Client, csrf: str | None, payload: bytes | str) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if csrf is not None:
        headers["x-csrf-token"] = csrf
    body = payload if isinstance(payload, bytes) else json.dumps({"record": payload})
    return c.post("/api/submit", content=body, headers=headers)


def _vote(a: Node, who, pid: str, ballot, *, seq_floor: int = 0):
    info = (
        a.call("gov_vote_prepare", proposal=pid, member=who.public.hex())
        if seq_floor == 0
        else None
    )
    now = int(time.time() * 1000)
    return sign_member_record(
        who,
        "vote",
        pid,
        (info or {}).get("scope", a.scope),
        {"ballot": ballot},
        now_ms=now,
        held_max_seq=(info or {}).get("held_max_seq", seq_floor),
    )


def test_member_records_are_checked_before_they_are_kept(pair):
    a, _ = pair
    member, stranger = generate(), generate()
    a.cli("member", "add", member.public.hex(), "--pseudonym", "ida")
    pid = a.call(
        "gov_proposal_create",
        key="http1",
        title="Http",
        method="approval",
        options=[{"id": "x", "name": "X"}, {"id": "y", "name": "Y"}],
        closes=int(time.time() * 1000) + 3_600_000,
    )["proposal"]
    good = _vote(a, member, pid, ["x"])
    with _client(a) as c:
        csrf = _csrf(c)
        assert _submit(c, None, good.raw.hex()).status_code == 403  # no CSRF value
        forged = bytearray(good.raw)
        forged[-1] ^= 1  # the signature's last byte
        r = _submit(c, csrf, bytes(forged).hex())
        assert r.status_code == 400
        assert "bad-signature" in r.json()["error"]
        assert _submit(c, csrf, "zz").status_code == 400  # not hex
        assert _submit(c, csrf, b"{not json").status_code == 400
        assert _submit(c, csrf, b'{"record": 5}').status_code == 400
        big = json.dumps({"record": "00" * 40_000}).encode()
        assert _submit(c, csrf, big).status_code == 413
        assert a.call("gov_results", proposal=pid)["counted"] == 0
        r = _submit(c, csrf, good.raw.hex())
        assert r.status_code == 200, r.text
        assert a.call("gov_results", proposal=pid)["counted"] == 1
        # The same record again, or an older one, is not stored twice.
        assert _submit(c, csrf, good.raw.hex()).status_code == 400
        # A stranger's vote (a key no node vouches for) is refused, not relayed.
        alien = sign_member_record(
            stranger,
            "vote",
            pid,
            good.scope,
            {"ballot": ["y"]},
            now_ms=int(time.time() * 1000),
            held_max_seq=0,
        )
        r = _submit(c, csrf, alien.raw.hex())
        assert r.status_code == 400
        assert "rejected" in r.json()["error"]
        receipt = c.get("/api/receipt", params={"proposal": pid, "member": stranger.public.hex()})
        assert receipt.json()["status"] == "no-vote"
        assert a.call("gov_results", proposal=pid)["counted"] == 1
        mine = c.get("/api/receipt", params={"proposal": pid, "member": member.public.hex()})
        assert mine.json()["status"] == "counts"
        bad = c.get("/api/receipt", params={"proposal": pid, "member": "xyz"})
        assert bad.status_code == 400


def test_unknown_proposal_page_says_so(pair):
    a, _ = pair
    with _client(a) as c:
        r = c.get("/proposal", params={"id": "nosuch.thing"})
        assert r.status_code == 400
        assert 'role="alert"' in r.text


def test_events_stream_announces_new_records(pair):
    a, _ = pair
    with _client(a) as c, c.stream("GET", "/events", timeout=10) as s:
        lines = s.iter_lines()
        first = [next(lines) for _ in range(3)]
        assert first[1] == "event: version"
        a.post_need(item="eggs", qty="3", unit="pcs")
        seen = []
        for line in lines:
            seen.append(line)
            if line.startswith("data:") and line != first[2]:
                break
        assert any(line.startswith("data:") for line in seen)


def test_a_taken_web_port_leaves_the_node_running(tmp_path):
    """The web app is an add-on: a port in use is logged, the node serves on."""
    import socket

    from harness import Cluster

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        c = Cluster(tmp_path)
        try:
            n = c.node("solo", web=True, web_port=port).init()
            n.start()
            log = wait_for(lambda: "event=web.failed" in n.log() and n.log(), 10, what="log")
            assert n.status()["records"] >= 1
            assert f"cannot listen on 127.0.0.1:{port}" in log
            with pytest.raises(AssertionError, match="not running"):
                n.cli("web", "url")
        finally:
            c.close()
