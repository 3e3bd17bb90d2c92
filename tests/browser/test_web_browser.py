"""The web app in a real headless chromium: a member's key made in the browser, its
vote signed there and counted; a need from another node appearing live; the
operator's pages; accessibility basics; screenshots of the main pages."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from harness import Node
from playwright.sync_api import expect
from procs import wait_for

from node.control import RemoteCallError

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAGES = ("/", "/balance", "/plan", "/proposals", "/budgets", "/assemblies", "/member", "/operator")


def _page(browser, width: int = 1000):
    ctx = browser.new_context(viewport={"width": width, "height": 900})
    return ctx, ctx.new_page()


def _proposal(a: Node, key: str, method: str = "approval", **extra) -> str:
    r = a.call(
        "gov_proposal_create",
        key=key,
        title=f"Proposal {key}",
        text="Shall we?",
        method=method,
        options=[{"id": "trees", "name": "Trees"}, {"id": "pond", "name": "Pond"}],
        closes=int(time.time() * 1000) + 3_600_000,
        **extra,
    )
    return str(r["proposal"])


def test_member_key_made_in_browser_signs_a_vote_that_counts(browser, pair, artifacts: Path):
    a, _ = pair
    url = a.web_url
    ctx, page = _page(browser)
    try:
        page.goto(url + "/member")
        page.get_by_role("button", name="Create a key").click()
        expect(page.locator("#pubkey")).to_have_value(re.compile("^[0-9a-f]{64}$"))
        pub = page.input_value("#pubkey")
        assert page.is_visible("#backup-link")  # the one-time backup is offered
        # The operator adds the key the browser shows, with the CLI.
        a.cli("member", "add", pub, "--pseudonym", "rosa")
        pid = _proposal(a, "park")
        page.goto(url + "/proposal?id=" + pid)
        page.get_by_label("Trees").check()
        page.get_by_role("button", name="Review my vote").click()
        page.wait_for_selector("#review:not([hidden])")
        shown = page.text_content("#review-fields") or ""
        # What it signs: the member's key, the ballot, the proposal.
        assert pub in shown
        assert '"trees"' in shown
        assert pid in shown
        page.get_by_role("button", name="Sign and send").click()
        expect(page.locator("#vote-status")).to_contain_text("accepted")
        # The daemon verified the browser's signature and holds the member's vote.
        results = a.call("gov_results", proposal=pid)
        assert results["counted"] == 1
        assert (
            results["detail"]["options"][0]["count"] + results["detail"]["options"][1]["count"] == 1
        )
        receipt = a.call("gov_vote_receipt", proposal=pid, member=pub)
        assert (receipt["status"], receipt["ballot"]) == ("counts", ["trees"])
        expect(page.locator("#receipt")).to_contain_text("Yes")
        # The operator closes it; the page learns of the close without a reload.
        page.evaluate("window.__notReloaded = true")
        a.cli("proposal", "close", pid, "--early")
        expect(page.locator("#results")).to_contain_text("final", timeout=15000)
        expect(page.locator("#receipt")).to_contain_text("was counted", timeout=15000)
        assert page.evaluate("window.__notReloaded") is True
        assert "1 ballot(s) counted" in (page.text_content("#results") or "")
        page.screenshot(path=str(artifacts / "proposal-result.png"), full_page=True)
    finally:
        ctx.close()


def test_imported_key_votes_like_a_cli_key(browser, pair, tmp_path: Path):
    """A key from `allmende member keygen` imported into the browser signs there."""
    a, _ = pair
    keyfile = tmp_path / "m.pem"
    pub = a.cli("member", "keygen", "--out", str(keyfile)).strip()
    a.cli("member", "add", pub, "--pseudonym", "karl")
    pid = _proposal(a, "ranked1", method="ranked")
    ctx, page = _page(browser)
    try:
        page.goto(a.web_url + "/member")
        page.get_by_label("Import a key").fill(keyfile.read_text())
        page.get_by_role("button", name="Import").click()
        expect(page.locator("#pubkey")).to_have_value(pub)
        page.goto(a.web_url + "/proposal?id=" + pid)
        page.get_by_label("Pond").fill("1")
        page.get_by_label("Trees").fill("2")
        page.get_by_role("button", name="Review my vote").click()
        page.get_by_role("button", name="Sign and send").click()
        expect(page.locator("#vote-status")).to_contain_text("accepted")
        receipt = a.call("gov_vote_receipt", proposal=pid, member=pub)
        assert receipt["ballot"] == [["pond"], ["trees"]]
        # A score ballot: a map of option to score, keys in canonical order.
        spid = _proposal(a, "score1", method="score", min_score=0, max_score=5)
        page.goto(a.web_url + "/proposal?id=" + spid)
        page.get_by_label("Trees").fill("4")
        page.get_by_role("button", name="Review my vote").click()
        page.get_by_role("button", name="Sign and send").click()
        expect(page.locator("#vote-status")).to_contain_text("accepted")
        receipt = a.call("gov_vote_receipt", proposal=spid, member=pub)
        assert (receipt["status"], receipt["ballot"]) == ("counts", {"pond": 0, "trees": 4})
        # A participatory budget (Equal Shares): projects with costs, ticked.
        bpid = a.call(
            "gov_proposal_create",
            key="budget1",
            title="Neighbourhood budget",
            method="mes",
            projects=[
                {"id": "bench", "name": "Benches", "cost": 3000},
                {"id": "mural", "name": "Mural", "cost": 8000},
            ],
            budget=10000,
            closes=int(time.time() * 1000) + 3_600_000,
        )["proposal"]
        page.goto(a.web_url + "/budgets")
        page.get_by_role("link", name="Neighbourhood budget").click()
        page.get_by_label("Benches (cost 3,000)").check()
        page.get_by_role("button", name="Review my vote").click()
        page.get_by_role("button", name="Sign and send").click()
        expect(page.locator("#vote-status")).to_contain_text("accepted")
        expect(page.locator("#results")).to_contain_text("Spent 3,000 of 10,000", timeout=15000)
        receipt = a.call("gov_vote_receipt", proposal=bpid, member=pub)
        assert receipt["ballot"] == ["bench"]
    finally:
        ctx.close()


def test_member_volunteers_in_browser_and_sees_the_verified_draw(browser, trio_nodes, artifacts):
    a, b, c = trio_nodes
    ctx, page = _page(browser)
    try:
        page.goto(a.web_url + "/member")
        page.get_by_role("button", name="Create a key").click()
        expect(page.locator("#pubkey")).to_have_value(re.compile("^[0-9a-f]{64}$"))
        pub = page.input_value("#pubkey")
        a.cli("member", "add", pub, "--pseudonym", "olga")
        aid = a.call(
            "gov_assembly_create",
            key="council",
            title="Neighbourhood council",
            size=1,
            quotas={},
            committers=[a.node_id, b.node_id, c.node_id],
        )["assembly"]
        page.goto(a.web_url + "/assemblies")
        page.get_by_role("link", name="Neighbourhood council").click()
        page.get_by_role("button", name="Volunteer with my key").click()
        expect(page.locator("#review-fields")).to_contain_text('"volunteer"')
        page.get_by_role("button", name="Sign and send").click()
        expect(page.locator("#volunteer-status")).to_contain_text("accepted")
        assert a.call("gov_assembly_show", assembly=aid)["volunteers"] == 1
        page.evaluate("window.__notReloaded = true")
        a.call("gov_assembly_freeze", assembly=aid)

        def shown(n: Node) -> dict:
            return n.call("gov_assembly_show", assembly=aid)

        for step, before in (("commit", "pool"), ("", "commits")):
            for n in (a, b, c):
                wait_for(
                    lambda n=n, before=before: (
                        shown(n)["pool"] == "complete"
                        if before == "pool"
                        else len(shown(n)[before]) == 3
                    ),
                    20,
                    what=f"{n.name}: {before}",
                )
                if step:
                    n.call(f"gov_assembly_{step}", assembly=aid)
        a.call("gov_assembly_seal", assembly=aid)  # freezes the commits before any reveal

        def revealed(n: Node) -> bool:
            try:
                n.call("gov_assembly_reveal", assembly=aid)
            except RemoteCallError as exc:
                if "seal" not in str(exc):  # only the seal not yet here may be waited out
                    raise
                return False
            return True

        for n in (a, b, c):
            wait_for(lambda n=n: revealed(n), 20, what=f"{n.name}: reveal after the seal")
        wait_for(lambda: len(shown(a)["reveals"]) == 3, 20, what="a: reveals")
        a.call("gov_assembly_draw", assembly=aid)
        expect(page.locator("#on-panel")).to_contain_text("You are on the panel", timeout=15000)
        expect(page.locator("#verification")).to_contain_text("verified")
        assert "NOT verified" not in (page.text_content("#verification") or "")
        assert page.evaluate("window.__notReloaded") is True
        page.screenshot(path=str(artifacts / "assembly.png"), full_page=True)
    finally:
        ctx.close()


def test_a_need_posted_on_another_node_appears_without_reload(browser, pair, artifacts: Path):
    a, b = pair
    ctx, page = _page(browser)
    try:
        page.goto(a.web_url + "/balance?scope=eu/de/berlin")
        page.evaluate("window.__notReloaded = true")
        assert "legumes" not in (page.text_content("main") or "")
        b.cli("need", "add", "legumes", "70", "kg", "--period", "2027-Q2")
        expect(page.locator("#balance-top")).to_contain_text("legumes", timeout=30000)
        assert page.evaluate("window.__notReloaded") is True
        row = page.locator("tr", has_text="legumes")
        assert "short" in (row.text_content() or "")  # a need without capacity: a deficit
        page.screenshot(path=str(artifacts / "balance.png"), full_page=True)
    finally:
        ctx.close()


def test_operator_signs_in_posts_and_withdraws(browser, pair):
    a, _ = pair
    token = a.cli("web", "token").strip()
    ctx, page = _page(browser)
    try:
        page.goto(a.web_url + "/operator")
        page.get_by_label("Operator token").fill("wrong")
        page.get_by_role("button", name="Sign in").click()
        assert "wrong operator token" in (page.text_content("body") or "")
        page.goto(a.web_url + "/operator")
        page.get_by_label("Operator token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_selector("text=Signed in.")
        page.get_by_label("Kind").select_option("capacity")
        page.get_by_label("Item", exact=True).fill("fruit")
        page.get_by_label("Quantity").fill("12")
        page.get_by_label("Unit").fill("kg")
        page.get_by_label("Period").fill("2027-Q3")
        page.get_by_role("button", name="Post", exact=True).click()
        page.wait_for_selector("text=Posted capacity")
        rows = a.call("list", kind="capacity")
        [beans] = [r for r in rows if r["item"] == "fruit"]
        page.get_by_role("button", name=f"Withdraw capacity {beans['id']}").click()
        page.wait_for_selector("text=Withdrew capacity")
        assert not [r for r in a.call("list", kind="capacity") if r["item"] == "fruit"]
        # A bad form is refused with the op's own message, nothing written.
        page.get_by_label("Item", exact=True).fill("fruit")
        page.get_by_label("Quantity").fill("lots")
        page.get_by_label("Unit").fill("kg")
        page.get_by_label("Period").fill("2027-Q3")
        page.get_by_role("button", name="Post", exact=True).click()
        assert page.locator("[role=alert]").count() == 1
        assert not [r for r in a.call("list", kind="capacity") if r["item"] == "fruit"]
        # A proposal made and closed from the operator page.
        page.goto(a.web_url + "/operator")
        page.get_by_label("Id", exact=True).fill("bikes")
        page.get_by_label("Title", exact=True).fill("Cargo bikes for the food coop")
        page.get_by_label("Method").select_option("approval")
        page.get_by_label("Options, one per line").fill("two Two bikes\nfour Four bikes")
        page.get_by_label("Open for (hours)").fill("2")
        page.get_by_role("button", name="Create").click()
        page.wait_for_selector("text=Created proposal")
        [prop] = [p for p in a.call("gov_proposal_list") if p["title"].startswith("Cargo")]
        assert [o["id"] for o in prop["options"]] == ["two", "four"]
        page.get_by_role("button", name="Close Cargo bikes for the food coop").click()
        page.wait_for_selector("text=vote(s) frozen")
        assert a.call("gov_proposal_show", proposal=prop["proposal"])["phase"] == "closed"
    finally:
        ctx.close()


@pytest.mark.parametrize("path", PAGES)
def test_accessibility_basics_and_screenshots(browser, pair, artifacts: Path, path: str):
    a, _ = pair
    ctx, page = _page(browser, width=375)
    try:
        page.goto(a.web_url + path)
        name = path.strip("/") or "node"
        page.screenshot(path=str(artifacts / f"{name}-375.png"), full_page=True)
        # No horizontal scrolling on a 375-px phone.
        assert page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
        # Every visible control has a label.
        unlabelled = page.evaluate(
            """[...document.querySelectorAll('input,select,textarea')]
               .filter(el => el.type !== 'hidden' && !el.hidden)
               .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
               .map(el => el.name || el.id)"""
        )
        assert unlabelled == []
        # Every link, button and field is reached by Tab, in order, nothing skipped.
        assert_tab_reaches_every_control(page)
        # Text contrast of at least 4.5:1 (WCAG AA) for body text, links and buttons.
        low = page.evaluate(CONTRAST_JS)
        assert low == [], low
    finally:
        ctx.close()


def assert_tab_reaches_every_control(page) -> None:
    """Tab from the top reaches every visible link, button and field, none skipped."""
    focusable = page.evaluate(
        """[...document.querySelectorAll('a[href],button,input,select,textarea,summary')]
           .filter(el => el.type !== 'hidden' && el.offsetParent !== null && !el.disabled)
           .length"""
    )
    reached = set()
    for _ in range(focusable + 2):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement.outerHTML.slice(0, 160)"))
    reached.discard(page.evaluate("document.body.outerHTML.slice(0, 160)"))
    assert len(reached) >= focusable


CONTRAST_JS = """
(() => {
  const rgb = (s) => s.match(/[\\d.]+/g).slice(0, 4).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const bg = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c;
    }
    return [255, 255, 255];
  };
  const out = [];
  for (const el of document.querySelectorAll('p,a,button,th,td,dt,dd,label,h1,h2,li,span')) {
    if (!el.offsetParent || !el.textContent.trim()) continue;
    const fg = lum(rgb(getComputedStyle(el).color)), b = lum(bg(el));
    const ratio = (Math.max(fg, b) + 0.05) / (Math.min(fg, b) + 0.05);
    if (ratio < 4.5) {
      out.push(el.tagName + ':' + el.textContent.trim().slice(0, 30) + ':' + ratio.toFixed(2));
    }
  }
  return out;
})()
"""


def test_page_load_is_light(pair):
    """The first page with its assets stays small (a phone on a slow link)."""
    import httpx

    a, _ = pair
    with httpx.Client(base_url=a.web_url) as c:
        total = len(c.get("/").content)
        for asset in ("app.js", "style.css"):
            r = c.get(f"/static/{asset}")
            assert r.status_code == 200
            total += len(r.content)
    assert total < 40_000
