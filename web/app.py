"""The members' web app: a Starlette app over the node's control operations.

Reads go through the same ops as the CLI (`node.ops`), so both show the same
figures. The app never holds a member's key: a vote, a comment, a statement or a
reaction arrives as a record the member's browser signed, and the ``submit`` op
verifies it like any record from the network before the node stores and relays it.
See `web.security` for who may change what.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlencode

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import web.delib_pages as delib_pages
import web.gov_pages as gov_pages
import web.html as html
import web.pages as pages
from node.errors import LocalError
from node.ops import TABLE
from web.security import (
    CSRF_COOKIE,
    OPERATOR_COOKIE,
    Csrf,
    is_operator,
    operator_session,
    read_token,
    token_matches,
)
from web.traffic import TrafficLog

__all__ = ["Backend", "build_app"]

STATIC = Path(__file__).parent / "static"
MAX_FORM_BYTES = 64 * 1024
MAX_SUBMIT_BYTES = 48 * 1024
LIVE_POLL = 0.5  # seconds between looks at the replica's version, per open event stream
LIVE_HEARTBEAT = 15.0
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class Backend(Protocol):
    """What the web app needs of the node."""

    async def call(self, op: str, args: dict[str, Any]) -> Any:
        """Run control op `op`, as the control socket would.

        Raises:
            LocalError: what the op refuses, with a message for a person.
        """
        ...

    def version(self) -> int:
        """A number that changes whenever the node's records change."""
        ...

    def now_ms(self) -> int: ...

    def traffic(self) -> tuple[int, int]:
        """Gossip bytes in and out since the daemon started."""
        ...

    @property
    def token_path(self) -> Path: ...


class Refused(Exception):
    """A request the app turns away (status and a message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Guard:
    """ASGI middleware: refuse foreign Host headers (DNS rebinding) while the app
    listens on loopback only, and add the security headers to every response."""

    def __init__(self, app: ASGIApp, *, loopback_only: bool) -> None:
        self.app = app
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.loopback_only:
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in LOOPBACK_NAMES:
                await _plain("unknown host", 400)(scope, receive, send)
                return

        async def send_secure(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_secure)


def _plain(text: str, status: int) -> Response:
    return Response(text, status_code=status, media_type="text/plain")


def build_app(
    backend: Backend, *, loopback_only: bool = True, traffic: TrafficLog | None = None
) -> ASGIApp:
    """The ASGI app for `backend`.

    Args:
        backend: the node (the daemon, or a test double).
        loopback_only: the app listens on loopback only: refuse other Host names.
        traffic: the gossip traffic sampled so far (`serve_web` samples it).
    """
    csrf = Csrf()
    log = traffic or TrafficLog()
    app = Starlette(
        routes=[
            Route("/", _page(backend, csrf, "/", functools.partial(_node, log))),
            Route("/balance", _page(backend, csrf, "/balance", _balance)),
            Route("/plan", _page(backend, csrf, "/plan", _plan)),
            Route("/proposals", _page(backend, csrf, "/proposals", _proposals)),
            Route("/proposal", _page(backend, csrf, "/proposals", _proposal)),
            Route("/budgets", _page(backend, csrf, "/budgets", _budgets)),
            Route("/assemblies", _page(backend, csrf, "/assemblies", _assemblies)),
            Route("/assembly", _page(backend, csrf, "/assemblies", _assembly)),
            Route("/member", _page(backend, csrf, "/member", _member)),
            Route("/operator", _operator_get(backend, csrf)),
            Route("/operator/{action}", _operator_post(backend, csrf), methods=["POST"]),
            Route("/api/vote-prepare", _api_get(backend, "gov_vote_prepare")),
            Route("/api/receipt", _api_get(backend, "gov_vote_receipt")),
            Route("/api/volunteer-prepare", _api_get(backend, "gov_assembly_prepare")),
            Route("/api/delib-prepare", _api_get(backend, "delib_prepare")),
            Route("/api/submit", _api_submit(backend, csrf), methods=["POST"]),
            Route("/events", _events(backend)),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
    )
    return Guard(app, loopback_only=loopback_only)


# --- pages ------------------------------------------------------------------------------

Body = tuple[str, str, tuple[str, ...]]  # title, HTML, scripts
Render = Callable[[Backend, Request], Awaitable[Body]]


def _csrf_cookie(request: Request) -> tuple[str, bool]:
    cookie = request.cookies.get(CSRF_COOKIE)
    if cookie and len(cookie) == 32:
        return cookie, False
    return Csrf.new_cookie(), True


def _set_csrf_cookie(response: Response, cookie: str) -> None:
    response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="strict", path="/")


def _page(backend: Backend, csrf: Csrf, here: str, render: Render) -> Callable[..., Any]:
    async def endpoint(request: Request) -> Response:
        cookie, fresh = _csrf_cookie(request)
        status = 200
        try:
            title, body, scripts = await render(backend, request)
        except LocalError as exc:
            title, body, scripts, status = "Not available", html.error_page(str(exc)), (), 400
        page = html.layout(title, body, csrf=csrf.value(cookie), here=here, scripts=scripts)
        response = HTMLResponse(page, status_code=status)
        if fresh:
            _set_csrf_cookie(response, cookie)
        return response

    return endpoint


async def _node(traffic: TrafficLog, b: Backend, r: Request) -> Body:
    status = await b.call("status", {})
    peers = await b.call("peers", {})
    history = await b.call("history", {"days": 14})
    hours = traffic.series(b.now_ms() / 1000, 48)
    body = pages.node_page(status, peers, history, hours)
    return f"Node {status['name']}", body, ()


async def _balance(b: Backend, r: Request) -> Body:
    q = {k: v.strip() for k, v in r.query_params.items() if v.strip()}
    args = {"scope": q.get("scope"), "period": q.get("period"), "item": q.get("item")}
    result = await b.call("balance", {**args, "depth": 1, "limit": 100})
    return f"Balance of {result['scope']}", pages.balance_page(result, q), ()


async def _plan(b: Backend, r: Request) -> Body:
    scope = r.query_params.get("scope", "").strip() or None
    matches = await b.call("match", {"scope": scope})
    commitments = await b.call("commitment_list", {"all": True})
    track = await b.call("track_record", {})
    return "Plan", pages.plan_page(matches, commitments, track), ()


async def _proposals(b: Backend, r: Request) -> Body:
    return "Proposals", gov_pages.proposals_page(await b.call("gov_proposal_list", {})), ()


async def _proposal(b: Backend, r: Request) -> Body:
    pid = r.query_params.get("id", "")
    p = await b.call("gov_proposal_show", {"proposal": pid})
    results, error = None, ""
    try:
        results = await b.call("gov_results", {"proposal": p["proposal"]})
    except LocalError as exc:
        error = str(exc)
    scripts = ("msgpack.js", "member.js", "discuss.js")
    delib = await _deliberation(b, p)
    return str(p["title"]), gov_pages.proposal_page(p, results, error, delib), scripts


async def _deliberation(b: Backend, p: dict[str, Any]) -> str:
    """The thread, statements, amendments and opinion map of proposal `p`."""
    d = await b.call("delib_discuss", {"proposal": p["proposal"]})
    opinions, why = None, ""
    try:
        opinions = await b.call("delib_opinions", {"proposal": p["proposal"]})
    except LocalError as exc:
        why = str(exc)
    names: dict[str, str] = {}
    for m in await b.call("gov_member_list", {"all": True}):
        names[m["member"]] = m["pseudonym"]
        if m.get("node_name"):
            names[m["node"]] = m["node_name"]
    open_ = p["phase"] in ("discussion", "open")
    closed_why = {"scheduled": "the discussion has not started yet"}.get(
        p["phase"], f"the proposal is {p['phase']}"
    )
    return (
        delib_pages.amendments_section(d, p, names)
        + delib_pages.discussion_sections(d, names, open_=open_, closed_why=closed_why)
        + delib_pages.opinions_section(opinions, why)
    )


async def _budgets(b: Backend, r: Request) -> Body:
    rows = await b.call("gov_proposal_list", {})
    return "Participatory budgets", gov_pages.proposals_page(rows, budgets=True), ()


async def _assemblies(b: Backend, r: Request) -> Body:
    return "Assemblies", gov_pages.assemblies_page(await b.call("gov_assembly_list", {})), ()


async def _assembly(b: Backend, r: Request) -> Body:
    a = await b.call("gov_assembly_show", {"assembly": r.query_params.get("id", "")})
    verification = None
    if a.get("panel"):
        verification = await b.call("gov_assembly_verify", {"assembly": a["assembly"]})
    scripts = ("msgpack.js", "member.js")
    return str(a["title"]), gov_pages.assembly_page(a, verification), scripts


async def _member(b: Backend, r: Request) -> Body:
    return "My member key", gov_pages.member_page(), ("msgpack.js", "member.js")


# --- operator -----------------------------------------------------------------------------


def _signed_in(backend: Backend, request: Request) -> bool:
    return is_operator(read_token(backend.token_path), request.cookies.get(OPERATOR_COOKIE))


async def _operator_html(
    backend: Backend, request: Request, csrf: str, *, error: str = "", status: int = 200
) -> Response:
    signed_in = _signed_in(backend, request)
    intents: list[dict[str, Any]] = []
    proposals: list[dict[str, Any]] = []
    node_id = ""
    if signed_in:
        for kind in ("need", "capacity"):
            intents += await backend.call("list", {"kind": kind})
        proposals = await backend.call("gov_proposal_list", {})
        node_id = (await backend.call("status", {}))["node_id"]
    body = gov_pages.operator_page(
        signed_in=signed_in,
        csrf=csrf,
        intents=intents,
        proposals=proposals,
        node_id=node_id,
        message=request.query_params.get("done", ""),
        error=error,
    )
    page = html.layout("Operator", body, csrf=csrf, here="/operator")
    return HTMLResponse(page, status_code=status)


def _operator_get(backend: Backend, csrf: Csrf) -> Callable[..., Any]:
    async def endpoint(request: Request) -> Response:
        cookie, fresh = _csrf_cookie(request)
        response = await _operator_html(backend, request, csrf.value(cookie))
        if fresh:
            _set_csrf_cookie(response, cookie)
        return response

    return endpoint


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise Refused(413, f"request body over {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _check_origin(request: Request) -> None:
    # A browser sends Origin with every POST; it must be this app's own.
    origin = request.headers.get("origin")
    if origin is None:
        return
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin != own:
        raise Refused(403, "this request came from another site")


def _check_csrf(request: Request, csrf: Csrf, given: str | None) -> None:
    _check_origin(request)
    if not csrf.check(request.cookies.get(CSRF_COOKIE), given):
        raise Refused(403, "missing or stale CSRF value: reload the page and try again")


def _form(data: bytes) -> dict[str, str]:
    try:
        parsed = parse_qs(data.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "malformed form") from None
    return {k: v[-1] for k, v in parsed.items()}


def _options(text: str) -> list[dict[str, str]]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line:
            oid, _, name = line.partition(" ")
            out.append({"id": oid, "name": name.strip() or oid})
    return out


async def _operator_action(backend: Backend, action: str, f: dict[str, str]) -> str:
    """Carry out one operator form; returns what to tell the operator."""

    def opt(name: str) -> str | None:
        return f.get(name, "").strip() or None

    if action == "post":
        args = {k: opt(k) for k in ("kind", "item", "qty", "unit", "period", "note")}
        r = await backend.call("post", args)
        return f"Posted {r['kind']} {r['id']}."
    if action == "withdraw":
        r = await backend.call("withdraw", {"kind": opt("kind"), "key": opt("key")})
        return f"Withdrew {r['kind']} {r['id']}."
    if action == "member":
        await backend.call(
            "gov_member_add", {"member": opt("member"), "pseudonym": opt("pseudonym")}
        )
        return f"Added member {opt('pseudonym')}."
    if action == "proposal":
        try:
            hours = int(f.get("hours") or "168")
        except ValueError:
            raise LocalError("hours must be a whole number") from None
        if not 1 <= hours <= 24 * 366:
            raise LocalError("a proposal is open for 1 hour to a year")
        fields: dict[str, Any] = {
            "key": opt("key"),
            "title": opt("title"),
            "text": opt("text"),
            "method": opt("method"),
            "options": _options(f.get("options", "")),
            "closes": backend.now_ms() + hours * 3_600_000,
        }
        r = await backend.call("gov_proposal_create", fields)
        return f"Created proposal {r['proposal']}."
    if action == "close":
        r = await backend.call("gov_proposal_close", {"proposal": opt("proposal"), "early": True})
        return f"Closed {r['proposal']}: {r['frozen_votes']} vote(s) frozen."
    raise Refused(404, "no such action")


def _operator_post(backend: Backend, csrf: Csrf) -> Callable[..., Any]:
    async def endpoint(request: Request) -> Response:
        action = request.path_params["action"]
        cookie = request.cookies.get(CSRF_COOKIE) or ""
        try:
            f = _form(await _read_body(request, MAX_FORM_BYTES))
            _check_csrf(request, csrf, f.get("csrf"))
            if action == "login":
                if not token_matches(read_token(backend.token_path), f.get("token", "")):
                    raise Refused(403, "wrong operator token")
                response = RedirectResponse("/operator?done=Signed+in.", status_code=303)
                token = read_token(backend.token_path) or ""
                response.set_cookie(
                    OPERATOR_COOKIE, operator_session(token), httponly=True, samesite="strict"
                )
                return response
            if action == "logout":
                response = RedirectResponse("/operator?done=Signed+out.", status_code=303)
                response.delete_cookie(OPERATOR_COOKIE)
                return response
            if not _signed_in(backend, request):
                raise Refused(403, "sign in with the operator token first")
            try:
                message = await _operator_action(backend, action, f)
            except LocalError as exc:
                return await _operator_html(
                    backend, request, csrf.value(cookie), error=str(exc), status=400
                )
            return RedirectResponse("/operator?" + urlencode({"done": message}), status_code=303)
        except Refused as exc:
            fresh = csrf.value(cookie) if cookie else ""
            return await _operator_html(
                backend, request, fresh, error=exc.message, status=exc.status
            )

    return endpoint


# --- JSON for the member's browser ---------------------------------------------------------


def _api_get(backend: Backend, op: str) -> Callable[..., Any]:
    async def endpoint(request: Request) -> Response:
        names = ("proposal", "member", "assembly", "kind")
        args = {k: request.query_params.get(k) for k in names}
        args = {k: v for k, v in args.items() if k in TABLE[op].params}
        try:
            return JSONResponse(await backend.call(op, args))
        except LocalError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    return endpoint


def _api_submit(backend: Backend, csrf: Csrf) -> Callable[..., Any]:
    async def endpoint(request: Request) -> Response:
        try:
            _check_csrf(request, csrf, request.headers.get("x-csrf-token"))
            data = await _read_body(request, MAX_SUBMIT_BYTES)
            try:
                record = json.loads(data)["record"]
            except (ValueError, KeyError, TypeError):
                raise Refused(400, 'send {"record": "<hex>"}') from None
            if not isinstance(record, str):
                raise Refused(400, "record must be hex text")
            return JSONResponse(await backend.call("submit", {"record": record}))
        except Refused as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        except LocalError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    return endpoint


# --- live updates ---------------------------------------------------------------------------


def _events(backend: Backend) -> Callable[..., Any]:
    async def endpoint(request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            seen = backend.version()
            yield f"retry: 2000\nevent: version\ndata: {seen}\n\n"
            quiet = 0.0
            while True:
                await trio.sleep(LIVE_POLL)
                now = backend.version()
                if now != seen:
                    seen, quiet = now, 0.0
                    yield f"event: version\ndata: {now}\n\n"
                else:
                    quiet += LIVE_POLL
                    if quiet >= LIVE_HEARTBEAT:
                        quiet = 0.0
                        yield ": keep-alive\n\n"

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"cache-control": "no-store"},
        )

    return endpoint
