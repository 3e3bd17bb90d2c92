"""The deliberation parts of a proposal's page without a daemon: the thread in the
order the ops give it, hidden comments shown as hidden, markup rendered safely,
amendment states, the opinion map as a chart and a table."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from web import charts, delib_pages

ALICE, BOB, NODE = "a1" * 32, "b2" * 32, "0f" * 32
NAMES = {ALICE: "alice", BOB: "bob", NODE: "kiez"}
PID = "0123456789abcdef.park"


def _c(ref: str, author: str, text: str | None, replies=(), hidden=None, reply=None) -> dict:
    return {
        "ref": ref,
        "author": author,
        "text": text,
        "reply": reply,
        "hidden": hidden,
        "replies": list(replies),
    }


def _discussion(**kw) -> dict:
    return {
        "proposal": PID,
        "version": 1,
        "thread": [],
        "statements": [],
        "amendments": [],
        "ignored": {},
        **kw,
    }


def test_thread_keeps_the_order_and_nesting_it_is_given():
    d = _discussion(
        thread=[
            _c(f"{ALICE}.c-1", ALICE, "first", [_c(f"{BOB}.c-2", BOB, "answer", reply="x")]),
            _c(f"{BOB}.c-3", BOB, "second"),
        ]
    )
    html = delib_pages.discussion_sections(d, NAMES, open_=True)
    assert html.index("first") < html.index("answer") < html.index("second")
    # The answer sits inside the first comment's list item, the second does not.
    first_item = html[html.index("first") : html.index("second")]
    assert first_item.count('<ol class="thread">') == 1
    assert "alice" in html
    assert "bob" in html
    # Reply-to offers every shown comment, in thread order.
    options = re.findall(r'<option value="([^"]*)"', html)
    assert options == ["", f"{ALICE}.c-1", f"{BOB}.c-2", f"{BOB}.c-3"]


def test_hidden_comment_shows_who_hid_it_and_why_not_its_text():
    d = _discussion(
        thread=[
            _c(
                f"{ALICE}.c-1",
                ALICE,
                None,
                hidden={"by": NODE, "reason": "insults a neighbour"},
            )
        ]
    )
    html = delib_pages.discussion_sections(d, NAMES, open_=True)
    assert "Hidden</strong> by <strong>kiez</strong>" in html
    assert "insults a neighbour" in html
    assert f'value="{ALICE}.c-1"' not in html  # no reply to a hidden comment
    assert "Reply to alice" not in html


def test_markup_is_the_safe_subset_and_everything_else_escaped():
    text = "**yes** <script>alert(1)</script> <img src=x onerror=alert(1)> [a](javascript:x)"
    d = _discussion(thread=[_c(f"{ALICE}.c-1", ALICE, text)])
    html = delib_pages.discussion_sections(d, {ALICE: '<b onclick="x">'}, open_=True)
    assert "<strong>yes</strong>" in html
    assert "<script>" not in html
    assert "<img" not in html
    assert "<b onclick" not in html
    assert "&lt;script&gt;" in html
    assert 'href="javascript' not in html


def test_closed_discussion_has_no_forms_and_says_why():
    d = _discussion(
        thread=[_c(f"{ALICE}.c-1", ALICE, "hi")],
        statements=[
            {
                "ref": f"{BOB}.s-1",
                "author": BOB,
                "text": "Trees",
                "agree": 2,
                "disagree": 1,
                "pass": 0,
            }
        ],
    )
    html = delib_pages.discussion_sections(d, NAMES, open_=False, closed_why="voting has ended")
    assert "<form" not in html
    assert "<button" not in html
    assert "Comments are closed: voting has ended." in html
    assert "2 agree, 1 disagree, 0 pass" in html
    live = delib_pages.discussion_sections(d, NAMES, open_=True)
    assert 'aria-label="Agree: Trees"' in live
    assert 'aria-label="Pass: Trees"' in live


def _amendment(n: int, state: str, **kw) -> dict:
    return {
        "ref": f"{ALICE}.a-{n}",
        "author": ALICE,
        "version": 1,
        "text": f"text {n}",
        "options": [],
        "reason": None,
        "state": state,
        "decision_reason": None,
        "included_in": None,
        "promoted_to": None,
        "outdated": False,
        **kw,
    }


def test_amendment_states_and_the_current_version():
    d = _discussion(
        version=2,
        amendments=[
            _amendment(1, "accepted", included_in=2),
            _amendment(2, "rejected", decision_reason="too <costly>"),
            _amendment(3, "promoted", decision_reason="other plan", promoted_to="0f0f.park-b"),
            _amendment(4, "proposed", outdated=True),
            _amendment(5, "proposed", version=2, options=[{"id": "pond", "name": "Pond"}]),
        ],
    )
    p = {"proposal": PID, "version": 2, "amendments": [f"{ALICE}.a-1"]}
    html = delib_pages.amendments_section(d, p, NAMES)
    assert "Current version: <strong>2</strong> (includes a-1)" in html
    assert "Accepted into version 2" in html
    assert "Rejected: too &lt;costly&gt;" in html
    assert 'Promoted to <a href="/proposal?id=0f0f.park-b">' in html
    assert "Open (outdated: written for an earlier version)" in html
    assert "Options to add or rename: pond = Pond" in html
    states = re.findall(r'data-state="(\w+)"', html)
    assert states == ["accepted", "rejected", "promoted", "proposed", "proposed"]


def test_amendment_forms_appear_only_when_they_may_be_used():
    d = _discussion(
        amendments=[
            _amendment(1, "proposed", text='<b onclick="x">'),
            _amendment(2, "rejected", decision_reason="no"),
            _amendment(3, "accepted", included_in=2),
        ]
    )
    p = {"proposal": PID, "version": 1, "text": "Trees </textarea><script>", "options": []}
    closed = delib_pages.amendments_section(d, p, NAMES)
    assert "<form" not in closed
    member = delib_pages.amendments_section(d, p, NAMES, amend_open=True)
    assert 'id="amend-form"' in member
    assert f'data-proposal="{PID}" data-version="1"' in member
    assert "Trees &lt;/textarea&gt;&lt;script&gt;</textarea>" in member  # prefilled, escaped
    assert 'id="amend-options"' in member
    assert 'id="decide-form"' not in member
    budget = {k: v for k, v in p.items() if k != "options"}
    assert 'id="amend-options"' not in delib_pages.amendments_section(
        d, budget, NAMES, amend_open=True
    )  # a budget's projects are amended through its text
    # This node wrote it: the operator is told to sign in, or, signed in, gets the form.
    note = delib_pages.amendments_section(d, p, NAMES, amend_open=True, author_here=True)
    assert "after signing in on the" in note
    assert 'id="decide-form"' not in note
    form = delib_pages.amendments_section(
        d, p, NAMES, amend_open=True, author_here=True, operator_csrf="c5"
    )
    decide = form[form.index('id="decide-form"') :]
    assert '<input type="hidden" name="csrf" value="c5">' in decide
    assert re.findall(r'<option value="([^"]+)"', decide) == [f"{ALICE}.a-1", f"{ALICE}.a-2"]
    assert "Open · alice · text: &lt;b onclick=&quot;x&quot;&gt;" in decide
    assert "<b onclick" not in form
    # Another node's proposal: no decision form even for this node's operator.
    other = delib_pages.amendments_section(d, p, NAMES, amend_open=True, operator_csrf="c5")
    assert 'id="decide-form"' not in other
    # After the discussion, a rejected amendment can still be promoted.
    late = delib_pages.amendments_section(d, p, NAMES, author_here=True, operator_csrf="c5")
    assert 'id="decide-form"' in late
    assert 'id="amend-form"' not in late
    late_form = late[late.index('id="decide-form"') :]
    assert re.findall(r'<option value="([^"]+)"', late_form) == [f"{ALICE}.a-2"]
    assert re.findall(r'name="action" value="(\w+)"', late_form) == ["promote"]
    assert 'value="accept"' in decide
    assert 'id="decide-reason"' in decide
    none_rejected = _discussion(amendments=[_amendment(3, "accepted", included_in=2)])
    assert "<form" not in delib_pages.amendments_section(
        none_rejected, p, NAMES, author_here=True, operator_csrf="c5"
    )


def test_decision_review_shows_the_records_escaped_and_carries_the_version():
    preview = {
        "proposal": PID,
        "version": 3,
        "records": [
            {"kind": "proposal", "key": "park", "scope": "eu/x", "body": {"text": "<script>"}},
            {"kind": "decision", "key": "d1", "scope": "eu/x", "body": {"accept": True}},
        ],
    }
    form = {"amendment": f"{ALICE}.a-1", "action": "accept", "proposal": PID, "reason": '"><x'}
    html = delib_pages.decision_review(preview, form, "c5")
    assert "<script>" not in html
    assert "&quot;text&quot;: &quot;&lt;script&gt;&quot;" in html
    assert "&quot;accept&quot;: true" in html
    assert '<input type="hidden" name="version" value="3">' in html
    assert '<input type="hidden" name="csrf" value="c5">' in html
    assert '<input type="hidden" name="reason" value="&quot;&gt;&lt;x">' in html
    assert "will sign these records" in html
    assert "Accept: sign with this node's key" in html
    assert f'href="/proposal?id={PID}#amendments-h"' in html


def _map() -> dict:
    return {
        "proposal": PID,
        "participants": 7,
        "statements": 3,
        "groups": [
            {"members": ["m1", "m2", "m3", "m4"], "agrees": ["s1"], "disagrees": ["s2"]},
            {"members": ["m5", "m6", "m7"], "agrees": ["s2"], "disagrees": ["s1"]},
        ],
        "bridging": ["s3"],
        "texts": {"s1": "More trees", "s2": "A car park", "s3": "Benches <please>"},
    }


def test_opinion_map_is_a_chart_with_a_table_of_the_same_groups():
    html = delib_pages.opinions_section(_map())
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert 'aria-label="Opinion map: 2 groups of 4, 3 members; 1 statements' in svg
    assert "Group 1" in svg
    assert "Group 2" in svg
    assert "Broad agreement" in svg
    assert "Benches &lt;please&gt;" in svg
    table = html[html.index("<table") : html.index("</table>")]
    rows = re.findall(r"<tr><th scope=row>(Group \d)</th><td class=num>(\d+)</td>", table)
    assert rows == [("Group 1", "4"), ("Group 2", "3")]
    assert "<li>More trees</li>" in table.split("Group 2")[0]
    assert "<li>Benches &lt;please&gt;</li>" in html.split("Broad agreement across groups")[1]
    assert "No reactions yet" in delib_pages.opinions_section({**_map(), "groups": []})
    assert "No opinion map: gone" in delib_pages.opinions_section(None, "gone")


@given(
    st.lists(
        st.tuples(
            st.integers(1, 2000),
            st.lists(
                st.tuples(st.sampled_from(["agree", "disagree"]), st.text(max_size=90)), max_size=5
            ),
        ),
        min_size=1,
        max_size=4,
    ),
    st.lists(st.text(max_size=90), max_size=5),
)
def test_opinion_chart_bars_follow_sizes_and_are_deterministic(groups, bridging):
    rows = [(f"Group {i}", n, s) for i, (n, s) in enumerate(groups, 1)]
    svg = charts.opinion_groups(rows, bridging, "map")
    assert svg == charts.opinion_groups(rows, bridging, "map")
    widths = [int(w) for w in re.findall(r'class="val"|width="(\d+)"', svg) if w]
    top = max(n for n, _ in groups)
    assert widths == [max(1, round(n * charts.WIDTH / top)) for n, _ in groups]
    lines = len(re.findall(r'<text x="24"', svg))
    assert lines == sum(len(s) for _, s in groups) + len(bridging)
    assert "<script" not in svg
