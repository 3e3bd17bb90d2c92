"""Amendments on the web app, against real daemons: a member's amendment signed in the
browser and relayed like a vote (the relay refusing what it must), and the proposal
author node's accept / reject / promote, reviewed and then signed by the node behind
the operator's token and CSRF value; in a real chromium, a key made in the browser
proposes an amendment, the operator accepts it, and the CLI shows the new version.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import Node
from playwright.sync_api import expect
from procs import wait_for
from test_web_browser import CONTRAST_JS, assert_tab_reaches_every_control
from test_web_deliberation import Web, _member, _now, _proposal, _section, _signed, _unchecked

from node.identity import generate
from web.security import operator_session

pytestmark = pytest.mark.slow


@pytest.fixture
def a(trio_nodes: tuple[Node, Node, Node]) -> Node:
    return trio_nodes[0]


@pytest.fixture
def web(a: Node) -> Iterator[Web]:
    w = Web(a)
    try:
        yield w
    finally:
        w.c.close()


def _operator(w: Web, a: Node) -> None:
    """Sign `w`'s browser in as the operator."""
    token = a.cli("web", "token").strip()
    r = w.c.post("/operator/login", data={"csrf": w.csrf, "token": token})
    assert r.status_code == 303, r.text


def _state(a: Node, pid: str) -> dict[str, str]:
    return {x["ref"]: x["state"] for x in a.call("delib_discuss", proposal=pid)["amendments"]}


def _version(a: Node, pid: str) -> int:
    return int(a.call("gov_proposal_show", proposal=pid).get("version", 1))


def _decide(w: Web, step: str, **form: Any) -> httpx.Response:
    return w.c.post(f"/operator/amendment/{step}", data={"csrf": w.csrf, **form})


# --- the relay of a member's amendment ------------------------------------------------------


def test_relay_refuses_forged_foreign_oversize_and_malformed_amendments(a, web):
    pid = _proposal(a, "amend-hostile")
    ida, eve = _member(a, "ida"), generate()
    good = _signed(a, ida, pid, "amendment", "a-ok", {"version": 1, "text": "Trees"})
    assert web.submit(good, csrf=False).status_code == 403
    forged = bytearray(good.raw)
    forged[-1] ^= 1
    r = web.submit(None, raw=json.dumps({"record": bytes(forged).hex()}).encode())
    assert r.status_code == 400
    assert "bad-signature" in r.json()["error"]
    b = {"proposal": pid, "version": 1, "text": "Eve's park"}
    r = web.submit(_unchecked(a, eve, "amendment", "a-eve", b))
    assert r.status_code == 400
    assert "rejected" in r.json()["error"]
    opt = {"id": "bench", "name": "Benches"}
    hostile = [
        {"version": 1, "text": "x" * 4001},  # over the amendment limit
        {"version": 1},  # changes nothing
        {"version": 0, "text": "Trees"},
        {"version": "1", "text": "Trees"},
        {"version": 1, "text": "Trees", "colour": "red"},
        {"version": 1, "text": "Trees", "reason": "r" * 501},
        {"version": 1, "text": "bell \x07"},
        {"version": 1, "options": "bench"},
        {"version": 1, "options": []},
        {"version": 1, "options": [opt] * 21},
        {"version": 1, "options": [{"id": "two words", "name": "X"}]},
        {"version": 1, "options": [{"id": "bench"}]},
        {"version": 1, "options": [{**opt, "cost": 5}]},
    ]
    for n, body in enumerate(hostile):
        r = web.submit(_unchecked(a, ida, "amendment", f"x-{n}", {"proposal": pid, **body}))
        assert r.status_code == 400, (body, r.text)
        assert "rejected" in r.json()["error"]
    r = web.submit(_unchecked(a, ida, "amendment", "x-p", {"proposal": "nonsense", "text": "T"}))
    assert r.status_code == 400
    assert web.submit(None, raw=json.dumps({"record": "00" * 30_000}).encode()).status_code == 413
    assert web.submit(None, raw=b'{"record": 5}').status_code == 400
    assert _state(a, pid) == {}
    web.sent(good)
    assert _state(a, pid) == {f"{ida.public.hex()}.a-ok": "proposed"}


# --- the author node's decisions --------------------------------------------------------------


def test_decisions_need_the_operator_token_and_csrf(a, web):
    pid = _proposal(a, "amend-guard")
    ida = _member(a, "ida")
    web.sent(_signed(a, ida, pid, "amendment", "a-1", {"version": 1, "text": "Benches"}))
    aref = f"{ida.public.hex()}.a-1"
    form = {"proposal": pid, "amendment": aref, "action": "accept"}
    token = a.cli("web", "token").strip()
    # No CSRF value, no operator sign-in, a stolen CSRF value, another site: all refused.
    with httpx.Client(base_url=a.web_url) as bare:
        for step in ("review", "confirm"):
            assert bare.post(f"/operator/amendment/{step}", data=form).status_code == 403
    no_token = _decide(web, "review", **form)
    assert no_token.status_code == 403
    assert "sign in with the operator token" in no_token.text
    assert _decide(web, "confirm", **form, version="1").status_code == 403
    other = Web(a)
    try:
        other.c.cookies.set("allmende_operator", operator_session(token))
        r = other.c.post(
            "/operator/amendment/confirm", data={**form, "version": "1", "csrf": web.csrf}
        )
        assert r.status_code == 403
        r = other.c.post(
            "/operator/amendment/confirm",
            data={**form, "version": "1", "csrf": other.csrf},
            headers={"origin": "http://evil.example"},
        )
        assert r.status_code == 403
        assert "another site" in r.text
    finally:
        other.c.close()
    # The proposal page offers no decision form to a browser that is not signed in.
    page = web.page(pid)
    assert 'id="decide-form"' not in page
    assert "after signing in on the" in page
    assert _state(a, pid) == {aref: "proposed"}
    assert _version(a, pid) == 1


def test_operator_reviews_then_the_node_signs_accept_reject_promote(a, web):
    pid = _proposal(a, "amend-ops")
    ida, ben = _member(a, "ida"), _member(a, "ben")
    bodies = [
        {"text": "Trees, and benches under them.", "reason": "shade"},
        {"options": [{"id": "car", "name": "Car park"}]},
        {"text": "A pond with ducks."},
    ]
    refs = []
    for n, b in enumerate(bodies, 1):
        web.sent(
            _signed(a, ida if n != 2 else ben, pid, "amendment", f"a-{n}", {"version": 1, **b})
        )
        refs.append(f"{(ida if n != 2 else ben).public.hex()}.a-{n}")
    _operator(web, a)
    page = web.page(pid)
    form = _section(page, "amendments-h")
    assert 'id="decide-form"' in form
    assert re.findall(r'<option value="([^"]+)"', form) == refs
    # Review: the page shows both records the node will sign; nothing is written yet.
    r = _decide(web, "review", proposal=pid, amendment=refs[0], action="accept")
    assert r.status_code == 200, r.text
    shown = r.text
    assert "This node's key will sign these records" in shown
    assert "&quot;version&quot;: 2" in shown
    assert "Trees, and benches under them." in shown
    assert f"&quot;amendments&quot;: [\n    &quot;{refs[0]}&quot;" in shown
    assert f"&quot;amendment&quot;: &quot;{refs[0]}&quot;" in shown
    assert 'name="version" value="1"' in shown
    assert _version(a, pid) == 1
    # Confirm: the node signs; back on the proposal page with a word of what happened.
    r = _decide(web, "confirm", proposal=pid, amendment=refs[0], action="accept", version="1")
    assert r.status_code == 303
    assert r.headers["location"].startswith(f"/proposal?id={pid}&done=Accepted")
    after = web.c.get(r.headers["location"]).text
    assert "the proposal has a new version" in after
    assert "Accepted into version 2" in _section(after, "amendments")
    assert _version(a, pid) == 2
    assert a.call("gov_proposal_show", proposal=pid)["text"] == "Trees, and benches under them."
    # Deciding twice, or on what the operator reviewed at an older version, is refused.
    again = _decide(web, "confirm", proposal=pid, amendment=refs[0], action="accept", version="2")
    assert again.status_code == 400
    assert "decided already" in again.text
    stale = _decide(web, "confirm", proposal=pid, amendment=refs[2], action="accept", version="1")
    assert stale.status_code == 400
    assert "changed since you reviewed this (it is at version 2 now)" in stale.text
    assert _state(a, pid)[refs[2]] == "proposed"
    # A rejection needs a reason; then a rejected amendment can become its own proposal.
    no_reason = _decide(web, "review", proposal=pid, amendment=refs[1], action="reject")
    assert no_reason.status_code == 400
    assert "give a reason" in no_reason.text
    r = _decide(web, "review", proposal=pid, amendment=refs[1], action="reject", reason="no cars")
    assert "&quot;accept&quot;: false" in r.text
    assert "&quot;reason&quot;: &quot;no cars&quot;" in r.text
    r = _decide(
        web,
        "confirm",
        proposal=pid,
        amendment=refs[1],
        action="reject",
        reason="no cars",
        version="2",
    )
    assert r.status_code == 303
    assert _state(a, pid)[refs[1]] == "rejected"
    r = _decide(web, "review", proposal=pid, amendment=refs[1], action="promote", key="car-park")
    assert r.status_code == 200, r.text
    assert f"&quot;from&quot;: &quot;{refs[1]}&quot;" in r.text
    r = _decide(
        web,
        "confirm",
        proposal=pid,
        amendment=refs[1],
        action="promote",
        key="car-park",
        version="2",
    )
    assert r.status_code == 303
    assert _state(a, pid)[refs[1]] == "promoted"
    assert "to proposal " + pid.split(".")[0] + ".car-park" in web.c.get(r.headers["location"]).text
    promoted = a.call("gov_proposal_show", proposal=pid.split(".")[0] + ".car-park")
    assert promoted["from"] == refs[1]
    assert {"id": "car", "name": "Car park"} in promoted["options"]
    # Promoting what is not rejected, an unknown action, a malformed or oversize form.
    r = _decide(web, "review", proposal=pid, amendment=refs[2], action="promote", key="ducks")
    assert r.status_code == 400
    assert "only a rejected amendment can be promoted" in r.text
    assert (
        _decide(web, "review", proposal=pid, amendment=refs[2], action="delete").status_code == 400
    )
    r = _decide(web, "review", proposal=pid, amendment="not-a-ref", action="accept")
    assert r.status_code == 400
    r = _decide(web, "confirm", proposal=pid, amendment=refs[2], action="accept", version="two")
    assert r.status_code == 400
    big = web.c.post(
        "/operator/amendment/review",
        content=b"csrf=" + web.csrf.encode() + b"&reason=" + b"x" * 70_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert big.status_code == 413
    assert _state(a, pid)[refs[2]] == "proposed"
    assert _version(a, pid) == 2


def test_only_the_author_node_decides(trio_nodes, web):
    a, b, _ = trio_nodes
    now = _now()
    pid = b.call(
        "gov_proposal_create",
        key="amend-elsewhere",
        title="Elsewhere",
        text="A bridge",
        method="approval",
        options=[{"id": "yes", "name": "Yes"}],
        discussion=now - 1000,
        opens=now + 3_600_000,
        closes=now + 7_200_000,
    )["proposal"]
    wait_for(lambda: any(p["proposal"] == pid for p in a.call("gov_proposal_list")), 20)
    ida = _member(a, "ida")
    web.sent(_unchecked(a, ida, "amendment", "a-1", {"proposal": pid, "version": 1, "text": "T"}))
    aref = f"{ida.public.hex()}.a-1"
    _operator(web, a)
    assert 'id="decide-form"' not in web.page(pid)  # this node did not write it
    r = _decide(web, "review", proposal=pid, amendment=aref, action="accept")
    assert r.status_code == 400
    assert "only the node that wrote the proposal decides" in r.text
    r = _decide(web, "confirm", proposal=pid, amendment=aref, action="accept", version="1")
    assert r.status_code == 400
    # A member signing a decision itself: refused (a member key signs member kinds only).
    mine = _proposal(a, "amend-self")
    web.sent(_signed(a, ida, mine, "amendment", "a-2", {"version": 1, "text": "Mine"}))
    mref = f"{ida.public.hex()}.a-2"
    fake = {"amendment": mref, "accept": True, "version": 2}
    r = web.submit(_unchecked(a, ida, "decision", "d-1", fake))
    assert r.status_code == 400, r.text
    assert "rejected" in r.json()["error"]
    assert _state(a, mine) == {mref: "proposed"}
    assert _version(a, mine) == 1


# --- in a browser -------------------------------------------------------------------------


def _context(browser: Any, width: int = 1000) -> Any:
    return browser.new_context(viewport={"width": width, "height": 900})


def _sign_in(page: Any, a: Node) -> None:
    page.goto(a.web_url + "/operator")
    page.get_by_label("Operator token").fill(a.cli("web", "token").strip())
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("text=Signed in.")


@pytest.mark.browser
def test_browser_key_amends_and_the_operator_accepts(browser, a, artifacts: Path):
    pid = _proposal(a, "amend-browser")
    member_ctx, operator_ctx = _context(browser), _context(browser)
    try:
        page = member_ctx.new_page()
        page.goto(a.web_url + "/member")
        page.get_by_role("button", name="Create a key").click()
        expect(page.locator("#pubkey")).to_have_value(re.compile("^[0-9a-f]{64}$"))
        pub = page.input_value("#pubkey")
        a.cli("member", "add", pub, "--pseudonym", "rosa")
        # The operator's page is open before the amendment exists: its list follows.
        op = operator_ctx.new_page()
        _sign_in(op, a)
        op.goto(a.web_url + "/proposal?id=" + pid)
        expect(op.get_by_label("Amendment", exact=True)).to_be_visible()
        page.goto(a.web_url + "/proposal?id=" + pid)
        page.evaluate("window.__notReloaded = true")
        expect(page.get_by_label("The text as you would have it")).to_have_value("Trees or a pond?")
        page.get_by_label("The text as you would have it").fill("Trees, and a bench under each.")
        page.get_by_label("Options to add or rename").fill("bench Benches")
        page.get_by_label("Why (optional)").fill("somewhere to sit")
        page.get_by_role("button", name="Review my amendment").click()
        expect(page.locator("#review-fields")).to_contain_text('"amendment"')
        shown = page.text_content("#review-fields") or ""
        for part in (pub, pid, "Trees, and a bench under each.", "Benches", '"version": 1'):
            assert part in shown
        page.screenshot(path=str(artifacts / "amendment-review.png"), full_page=True)
        page.get_by_role("button", name="Sign and send").click()
        expect(page.locator("#amend-status")).to_contain_text("accepted")
        expect(page.locator("#amendments")).to_contain_text("bench = Benches", timeout=15000)
        [amendment] = a.call("delib_discuss", proposal=pid)["amendments"]
        aref = amendment["ref"]
        assert aref.startswith(pub + ".a-")
        # A second tab of the member's starts another amendment, still unsent.
        draft = member_ctx.new_page()
        draft.goto(a.web_url + "/proposal?id=" + pid)
        draft.get_by_label("The text as you would have it").fill("Only trees.")
        # The operator, whose page was open all along, reviews and accepts it.
        expect(op.locator("#decide-amendment option")).to_have_count(1, timeout=15000)
        op.get_by_label("Amendment", exact=True).select_option(aref)
        op.get_by_role("button", name="Review: accept").click()
        expect(op.locator("#decision-records")).to_contain_text('"version": 2')
        assert "Trees, and a bench under each." in (op.text_content("#decision-records") or "")
        op.screenshot(path=str(artifacts / "amendment-decision.png"), full_page=True)
        op.get_by_role("button", name="Accept: sign with this node's key").click()
        expect(op.locator("main")).to_contain_text("the proposal has a new version")
        expect(op.locator("#amendments")).to_contain_text("Accepted into version 2")
        # The member's page follows without a reload: the new version and its text.
        expect(page.locator("#amendments")).to_contain_text(
            "Accepted into version 2", timeout=15000
        )
        expect(page.locator("#facts")).to_contain_text("2", timeout=15000)
        expect(page.locator("#text")).to_contain_text("Trees, and a bench under each.")
        expect(page.locator("#text")).to_contain_text("Benches")
        # The untouched amendment form now starts from version 2.
        expect(page.get_by_label("The text as you would have it")).to_have_value(
            "Trees, and a bench under each."
        )
        assert page.get_attribute("#amend-form", "data-version") == "2"
        assert page.evaluate("window.__notReloaded") is True
        page.screenshot(path=str(artifacts / "amendment-accepted.png"), full_page=True)
        # The draft was written against version 1: kept as typed, and not sent.
        expect(draft.locator("#amendments")).to_contain_text("Accepted", timeout=15000)
        expect(draft.get_by_label("The text as you would have it")).to_have_value("Only trees.")
        draft.get_by_role("button", name="Review my amendment").click()
        expect(draft.locator("#amend-status")).to_contain_text(
            "Not sent: the proposal is at version 2 now"
        )
        # The node holds the new version including it; the CLI says so.
        d = json.loads(a.cli("discuss", pid, "--json"))
        assert d["version"] == 2
        assert [(x["ref"], x["state"], x["included_in"]) for x in d["amendments"]] == [
            (aref, "accepted", 2)
        ]
        p = a.call("gov_proposal_show", proposal=pid)
        assert (p["version"], p["text"], p["amendments"]) == (
            2,
            "Trees, and a bench under each.",
            [aref],
        )
        assert {"id": "bench", "name": "Benches"} in p["options"]
    finally:
        member_ctx.close()
        operator_ctx.close()


def _fits_a_phone(page: Any, artifacts: Path, name: str) -> None:
    """No horizontal scroll at 375 px, every field labelled, every control reached by
    Tab, enough contrast; a screenshot for the record."""
    page.screenshot(path=str(artifacts / f"{name}-375.png"), full_page=True)
    assert page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    ), name
    unlabelled = page.evaluate(
        """[...document.querySelectorAll('input,select,textarea,button')]
           .filter(el => el.type !== 'hidden' && el.offsetParent !== null)
           .filter(el => !(el.labels && el.labels.length)
                         && !el.getAttribute('aria-label') && !el.textContent.trim())
           .map(el => el.name || el.id)"""
    )
    assert unlabelled == [], name
    assert_tab_reaches_every_control(page)
    assert page.evaluate(CONTRAST_JS) == [], name


@pytest.mark.browser
def test_amendment_forms_are_accessible_on_a_phone(browser, a, web, artifacts: Path):
    pid = _proposal(a, "amend-phone")
    ida = _member(a, "ida")
    long_word = "Baumpflanzgenossenschaftsversammlung" * 3
    b = {"version": 1, "text": long_word, "options": [{"id": "pond", "name": long_word[:100]}]}
    web.sent(_signed(a, ida, pid, "amendment", "a-1", b))
    ctx = _context(browser, 375)
    page = ctx.new_page()
    try:
        _sign_in(page, a)
        page.goto(a.web_url + "/proposal?id=" + pid)
        expect(page.get_by_label("Amendment", exact=True)).to_be_visible()
        expect(page.get_by_label("The text as you would have it")).to_be_visible()
        _fits_a_phone(page, artifacts, "amendment-forms")
        page.get_by_role("button", name="Review: accept").click()
        expect(page.locator("#decision-records")).to_contain_text(long_word)
        _fits_a_phone(page, artifacts, "amendment-decision")
    finally:
        ctx.close()
