"""A proposal's deliberation on the web app, against a real daemon: the thread with a
hidden comment, the amendments' states, the opinion map's groups; the relay of
member-signed comments, statements and reactions refusing what it must; and in a real
chromium, a key made in the browser comments and reacts, seen by the page and the CLI.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import Cluster, Node
from playwright.sync_api import expect
from procs import wait_for
from test_web_browser import CONTRAST_JS, assert_tab_reaches_every_control

from node.crdt.record import sign_record
from node.governance.member_sign import member_seq, sign_member_record
from node.identity import generate
from node.keys import Identity

pytestmark = pytest.mark.slow
HOUR = 3_600_000


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    c = Cluster(tmp_path_factory.mktemp("delib"))
    try:
        n = c.node("d", web=True).init()
        n.start()
        wait_for(lambda: n.web_url, 20, what="web.url")
        yield n
    finally:
        c.close()


def _now() -> int:
    return int(time.time() * 1000)


def _proposal(a: Node, key: str) -> str:
    now = _now()
    return str(
        a.call(
            "gov_proposal_create",
            key=key,
            title=f"Park {key}",
            text="Trees or a pond?",
            method="approval",
            options=[{"id": "trees", "name": "Trees"}, {"id": "pond", "name": "Pond"}],
            discussion=now - 1000,
            opens=now + HOUR,
            closes=now + 2 * HOUR,
        )["proposal"]
    )


def _member(a: Node, name: str) -> Identity:
    who = generate()
    a.call("gov_member_add", member=who.public.hex(), pseudonym=name)
    return who


def _signed(a: Node, who: Identity, pid: str, kind: str, key: str, b: dict[str, Any]):
    info = a.call("delib_prepare", proposal=pid, member=who.public.hex(), kind=kind)
    return sign_member_record(
        who,
        kind,
        key,
        info["scope"],
        {"proposal": info["proposal"], **b},
        now_ms=max(_now(), info["now"]),
        held_max_seq=info["held_max_seq"],
    )


def _unchecked(a: Node, who: Identity, kind: str, key: str, b: dict[str, Any]):
    """A record signed without the model's checks (what a hostile client can send)."""
    return sign_record(
        who.signer(),
        who.public,
        kind,
        key,
        member_seq(_now(), 0),
        _now() << 16,
        a.scope,
        b,
    )


class Web:
    """A browser's session with the web app: its cookie and CSRF value."""

    def __init__(self, a: Node) -> None:
        self.c = httpx.Client(base_url=a.web_url, follow_redirects=False)
        page = self.c.get("/proposals").text
        self.csrf = re.search(r'<meta name="csrf" content="([0-9a-f]+)">', page).group(1)

    def submit(self, record: Any, *, csrf: bool = True, raw: bytes | None = None):
        headers = {"content-type": "application/json"}
        if csrf:
            headers["x-csrf-token"] = self.csrf
        body = raw if raw is not None else json.dumps({"record": record.raw.hex()}).encode()
        return self.c.post("/api/submit", content=body, headers=headers)

    def sent(self, record: Any) -> None:
        r = self.submit(record)
        assert r.status_code == 200, r.text

    def page(self, pid: str) -> str:
        r = self.c.get("/proposal", params={"id": pid})
        assert r.status_code == 200, r.text
        return r.text


@pytest.fixture
def web(node: Node) -> Iterator[Web]:
    w = Web(node)
    try:
        yield w
    finally:
        w.c.close()


def _section(page: str, ident: str) -> str:
    start = page.index(f'id="{ident}"')
    return page[start : page.index("</section>", start)]


def test_thread_with_a_hidden_comment_and_a_reply_that_came_first(node, web):
    a = node
    pid = _proposal(a, "thread")
    ida, ben = _member(a, "ida"), _member(a, "ben")
    first = _signed(a, ida, pid, "comment", "c-1", {"text": "**Trees** give shade"})
    reply = _signed(
        a, ben, pid, "comment", "c-2", {"text": "And a pond?", "reply": f"{ida.public.hex()}.c-1"}
    )
    rude = _signed(a, ben, pid, "comment", "c-3", {"text": "You fools"})
    # The reply arrives before its parent: shown at the top, marked, until the parent comes.
    web.sent(reply)
    page = web.page(pid)
    assert "A reply to a comment this node does not show." in _section(page, "discussion")
    web.sent(first)
    web.sent(rude)
    thread = _section(web.page(pid), "discussion")
    assert "does not show" not in thread
    assert "<strong>Trees</strong> give shade" in thread
    assert thread.index("Trees") < thread.index("And a pond?") < thread.index("You fools")
    assert thread.count('<ol class="thread">') == 2  # the reply nests under the first
    ref = f"{ben.public.hex()}.c-3"
    a.call("delib_hide", comment=ref, reason="insults the neighbours")
    page = web.page(pid)
    thread = _section(page, "discussion")
    assert "You fools" not in page
    assert "insults the neighbours" in thread
    assert "<strong>Hidden</strong> by <strong>d</strong>" in thread
    assert f'value="{ref}"' not in page  # nobody is offered to answer a hidden comment
    # The CLI shows the same thread.
    shown = a.cli("discuss", pid)
    assert "Trees give shade" in shown
    assert "insults the neighbours" in shown


def test_amendment_states_and_the_version_the_ballot_is_for(node, web):
    a = node
    pid = _proposal(a, "amend")
    ida = _member(a, "ida")
    refs = []
    for n, b in enumerate(
        [
            {"text": "Trees, and benches under them."},
            {"options": [{"id": "car", "name": "Car park"}], "reason": "parking"},
            {"text": "A pond with ducks."},
            {"text": "A pond without ducks."},
        ],
        1,
    ):
        web.sent(_signed(a, ida, pid, "amendment", f"a-{n}", {"version": 1, **b}))
        refs.append(f"{ida.public.hex()}.a-{n}")
    a.call("delib_amendment_decide", amendment=refs[0], accept=True)
    a.call("delib_amendment_decide", amendment=refs[1], accept=False, reason="no more cars")
    a.call("delib_amendment_decide", amendment=refs[2], accept=False, reason="one plan")
    promoted = a.call("delib_amendment_promote", amendment=refs[2], key="ducks")["proposal"]
    page = web.page(pid)
    box = _section(page, "amendments")
    assert "Current version: <strong>2</strong> (includes a-1)" in box
    assert re.findall(r'data-state="(\w+)"', box) == [
        "accepted",
        "rejected",
        "promoted",
        "proposed",
    ]
    assert "Accepted into version 2" in box
    assert "Rejected: no more cars" in box
    assert f'href="/proposal?id={promoted}"' in box
    assert "Open (outdated: written for an earlier version)" in box
    assert "Trees, and benches under them." in _section(page, "text")  # the new text
    assert "<dt>Version</dt><dd>2</dd>" in page
    # Once voting opens, the ballot says which version it is for.
    now = _now()
    opened = a.call(
        "gov_proposal_create",
        key="amend-open",
        title="Open",
        method="approval",
        options=[{"id": "x", "name": "X"}],
        closes=now + HOUR,
    )["proposal"]
    assert "Your ballot is for version 1 of this proposal." in web.page(opened)


def test_opinion_map_shows_the_planted_groups_and_the_bridge(node, web):
    a = node
    pid = _proposal(a, "map")
    people = [_member(a, f"p{i}") for i in range(8)]
    texts = ["More trees", "Fewer cars", "A car park", "Benches for everyone"]
    for n, t in enumerate(texts):
        web.sent(_signed(a, people[0], pid, "statement", f"s-{n}", {"text": t}))
    sref = [f"{people[0].public.hex()}.s-{n}" for n in range(4)]
    green = ("agree", "agree", "disagree", "agree")
    grey = ("disagree", "disagree", "agree", "agree")
    for i, who in enumerate(people):
        for n, react in enumerate(green if i < 5 else grey):
            b = {"statement": sref[n], "react": react}
            web.sent(_signed(a, who, pid, "reaction", f"r-{n}", b))
    page = web.page(pid)
    box = _section(page, "opinions")
    rows = re.findall(r"<tr><th scope=row>(Group \d)</th><td class=num>(\d+)</td>", box)
    assert rows == [("Group 1", "5"), ("Group 2", "3")]
    table = box[box.index("<table") : box.index("</table>")]
    first, second = table.split("Group 2")
    assert "<li>More trees</li>" in first
    assert "<li>A car park</li>" in second
    assert "<li>Benches for everyone</li>" in box.split("Broad agreement across groups")[1]
    assert 'role="img" aria-label="Opinion map: 2 groups of 5, 3 members' in box
    assert "8 agree, 0 disagree, 0 pass" in _section(page, "statements")


def test_relay_refuses_forged_foreign_oversize_and_malformed_contributions(node, web):
    a = node
    pid = _proposal(a, "hostile")
    ida, eve = _member(a, "ida"), generate()  # eve: a key no node vouches for

    def comments() -> list:
        return a.call("delib_discuss", proposal=pid)["thread"]

    good = _signed(a, ida, pid, "comment", "c-ok", {"text": "Hello"})
    assert web.submit(good, csrf=False).status_code == 403  # no CSRF value
    forged = bytearray(good.raw)
    forged[-1] ^= 1
    r = web.submit(None, raw=json.dumps({"record": bytes(forged).hex()}).encode())
    assert r.status_code == 400
    assert "bad-signature" in r.json()["error"]
    stranger = _unchecked(a, eve, "comment", "c-eve", {"proposal": pid, "text": "Hi"})
    r = web.submit(stranger)
    assert r.status_code == 400
    assert "rejected" in r.json()["error"]
    hostile = [
        ("comment", {"proposal": pid, "text": "x" * 2001}),  # over the comment limit
        ("comment", {"proposal": pid, "text": "Hi", "reply": "not-a-ref"}),
        ("comment", {"proposal": pid, "text": "Hi", "colour": "red"}),
        ("comment", {"proposal": "nonsense", "text": "Hi"}),
        ("statement", {"proposal": pid, "text": "s" * 281}),
        ("statement", {"proposal": pid, "text": "two\nlines"}),
        ("reaction", {"proposal": pid, "statement": f"{ida.public.hex()}.s-1", "react": "love"}),
        ("reaction", {"proposal": pid, "statement": "s-1", "react": "agree"}),
    ]
    for n, (kind, b) in enumerate(hostile):
        r = web.submit(_unchecked(a, ida, kind, f"x-{n}", b))
        assert r.status_code == 400, (kind, b, r.text)
        assert "rejected" in r.json()["error"]
    big = json.dumps({"record": "00" * 30_000}).encode()
    assert web.submit(None, raw=big).status_code == 413
    assert web.submit(None, raw=b"{not json").status_code == 400
    assert web.submit(None, raw=b'{"record": "zz"}').status_code == 400
    assert comments() == []
    web.sent(good)
    assert [c["text"] for c in comments()] == ["Hello"]
    # A reaction to a statement of another proposal is kept but never counted.
    other = _proposal(a, "hostile-other")
    web.sent(_signed(a, ida, other, "statement", "s-o", {"text": "Elsewhere"}))
    b = {"statement": f"{ida.public.hex()}.s-o", "react": "agree"}
    web.sent(_signed(a, ida, pid, "reaction", "r-o", b))
    assert "Not counted (not members of the electorate): 1 reaction." in web.page(pid)


def test_prepare_refuses_strangers_bad_keys_and_kinds(node, web):
    a = node
    pid = _proposal(a, "prep")
    ida = _member(a, "ida")

    def prep(**q: str) -> httpx.Response:
        return web.c.get("/api/delib-prepare", params={"proposal": pid, **q})

    ok = prep(member=ida.public.hex(), kind="comment")
    assert ok.status_code == 200
    assert ok.json()["version"] == 1
    eve = prep(member=generate().public.hex(), kind="comment")
    assert eve.status_code == 400
    assert "not a member" in eve.json()["error"]
    assert prep(member="xyz", kind="comment").status_code == 400
    assert "64 hex digits" in prep(member="ab" * 31, kind="comment").json()["error"]
    assert prep(member=ida.public.hex(), kind="vote").status_code == 400
    assert prep(member=ida.public.hex()).status_code == 400  # no kind


# --- in a browser ---------------------------------------------------------------------


def _context(browser: Any, width: int = 1000) -> Any:
    return browser.new_context(viewport={"width": width, "height": 900})


@pytest.mark.browser
def test_browser_key_comments_and_reacts(browser, node, artifacts: Path, tmp_path: Path):
    a = node
    pid = _proposal(a, "browser")
    keyfile = tmp_path / "olga.pem"
    olga = a.cli("member", "keygen", "--out", str(keyfile)).strip()
    a.cli("member", "add", olga, "--pseudonym", "olga")
    said = a.cli("statement", "add", pid, "The pond needs a fence", "--key", str(keyfile))
    sref = said.split()[-1]
    ctx = _context(browser)
    page = ctx.new_page()
    try:
        page.goto(a.web_url + "/member")
        page.get_by_role("button", name="Create a key").click()
        expect(page.locator("#pubkey")).to_have_value(re.compile("^[0-9a-f]{64}$"))
        pub = page.input_value("#pubkey")
        a.cli("member", "add", pub, "--pseudonym", "rosa")
        page.goto(a.web_url + "/proposal?id=" + pid)
        page.evaluate("window.__notReloaded = true")
        page.get_by_label("Your comment").fill("I would *love* a pond")
        page.get_by_role("button", name="Review my comment").click()
        expect(page.locator("#review-fields")).to_contain_text('"comment"')
        shown = page.text_content("#review-fields") or ""
        assert pub in shown
        assert pid in shown
        assert "love" in shown
        page.get_by_role("button", name="Sign and send").click()
        expect(page.locator("#comment-status")).to_contain_text("accepted")
        # The page updates itself (server-sent events), no reload.
        expect(page.locator("#discussion")).to_contain_text("I would love a pond", timeout=15000)
        assert page.locator("#discussion em").text_content() == "love"
        # A reply, chosen with the comment's own Reply button.
        page.get_by_role("button", name="Reply to rosa").click()
        assert page.evaluate("document.activeElement.id") == "comment-text"
        page.keyboard.type("Ducks too")
        page.get_by_role("button", name="Review my comment").click()
        page.get_by_role("button", name="Sign and send").click()
        expect(page.locator("#comment-status")).to_contain_text("accepted")
        expect(page.locator("#discussion ol.thread ol.thread")).to_contain_text(
            "Ducks too", timeout=15000
        )
        # A reaction, then a changed mind: one reaction per member and statement.
        page.get_by_role("button", name="Agree: The pond needs a fence", exact=True).click()
        expect(page.locator("#review-fields")).to_contain_text('"agree"')
        page.get_by_role("button", name="Sign and send").click()
        expect(page.locator("#react-status")).to_contain_text("agree")
        expect(page.locator("#statements")).to_contain_text("1 agree, 0 disagree", timeout=15000)
        page.get_by_role("button", name="Disagree: The pond needs a fence", exact=True).click()
        page.get_by_role("button", name="Sign and send").click()
        expect(page.locator("#statements")).to_contain_text("0 agree, 1 disagree", timeout=15000)
        expect(page.locator("#opinions")).to_contain_text("1 participant(s)", timeout=15000)
        assert page.evaluate("window.__notReloaded") is True
        # The node verified and kept them: the CLI shows the same discussion.
        d = json.loads(a.cli("discuss", pid, "--json"))
        [top] = d["thread"]
        assert (top["author"], top["text"]) == (pub, "I would *love* a pond")
        assert [r["text"] for r in top["replies"]] == ["Ducks too"]
        assert d["statements"][0]["ref"] == sref
        assert (d["statements"][0]["agree"], d["statements"][0]["disagree"]) == (0, 1)
        assert "I would love a pond" in a.cli("discuss", pid)
        page.screenshot(path=str(artifacts / "deliberation.png"), full_page=True)
    finally:
        ctx.close()


@pytest.mark.browser
def test_deliberation_page_is_accessible_on_a_phone(browser, node, web, artifacts: Path):
    a = node
    pid = _proposal(a, "phone")
    ida, ben = _member(a, "ida"), _member(a, "ben")
    long_word = "Baumpflanzgenossenschaftsversammlung" * 3
    web.sent(_signed(a, ida, pid, "comment", "c-1", {"text": f"- one\n- {long_word}"}))
    web.sent(_signed(a, ben, pid, "statement", "s-1", {"text": long_word}))
    for who, react in ((ida, "agree"), (ben, "disagree")):
        b = {"statement": f"{ben.public.hex()}.s-1", "react": react}
        web.sent(_signed(a, who, pid, "reaction", "r-1", b))
    web.sent(_signed(a, ida, pid, "amendment", "a-1", {"version": 1, "text": long_word}))
    ctx = _context(browser, 375)
    page = ctx.new_page()
    try:
        page.goto(a.web_url + "/proposal?id=" + pid)
        page.screenshot(path=str(artifacts / "deliberation-375.png"), full_page=True)
        assert page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
        unlabelled = page.evaluate(
            """[...document.querySelectorAll('input,select,textarea,button')]
               .filter(el => el.type !== 'hidden' && el.offsetParent !== null)
               .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                             && !el.textContent.trim())
               .map(el => el.name || el.id)"""
        )
        assert unlabelled == []
        assert_tab_reaches_every_control(page)
        assert page.evaluate(CONTRAST_JS) == []
    finally:
        ctx.close()


@pytest.mark.browser
def test_browser_vote_names_the_amended_version(browser, node, web, tmp_path: Path):
    """After an accepted amendment the ballot is for version 2, and the browser's vote
    says so: it counts (a vote for version 1 would be reported as outdated)."""
    a = node
    now = _now()
    pid = a.call(
        "gov_proposal_create",
        key="amended-vote",
        title="Amended vote",
        method="approval",
        options=[{"id": "trees", "name": "Trees"}, {"id": "pond", "name": "Pond"}],
        discussion=now - 1000,
        opens=now + 5000,
        closes=now + HOUR,
    )["proposal"]
    ida = _member(a, "ida")
    b = {"version": 1, "options": [{"id": "pond", "name": "Duck pond"}]}
    web.sent(_signed(a, ida, pid, "amendment", "a-1", b))
    a.call("delib_amendment_decide", amendment=f"{ida.public.hex()}.a-1", accept=True)
    keyfile = tmp_path / "vera.pem"
    vera = a.cli("member", "keygen", "--out", str(keyfile)).strip()
    a.cli("member", "add", vera, "--pseudonym", "vera")
    wait_for(lambda: a.call("gov_proposal_show", proposal=pid)["phase"] == "open", 15, what="open")
    ctx = _context(browser)
    page = ctx.new_page()
    try:
        page.goto(a.web_url + "/member")
        page.get_by_label("Import a key").fill(keyfile.read_text())
        page.get_by_role("button", name="Import").click()
        expect(page.locator("#pubkey")).to_have_value(vera)
        page.goto(a.web_url + "/proposal?id=" + pid)
        expect(page.locator("#ballot")).to_contain_text("Your ballot is for version 2")
        page.get_by_label("Duck pond").check()
        page.get_by_role("button", name="Review my vote").click()
        page.get_by_role("button", name="Sign and send").click()
        expect(page.locator("#vote-status")).to_contain_text("accepted")
        receipt = a.call("gov_vote_receipt", proposal=pid, member=vera)
        assert (receipt["status"], receipt["ballot"]) == ("counts", ["pond"])
        assert a.call("gov_results", proposal=pid)["counted"] == 1
    finally:
        ctx.close()
