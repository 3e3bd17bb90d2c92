"""The web app's static files, served from memory (web/assets.py): every file of
web/static with its type, an ETag and a 304 for a browser that holds it; nothing else."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio

from web.app import STATIC, build_app
from web.assets import MEDIA_TYPES, load_assets

FILES = sorted(p.name for p in STATIC.iterdir())


class Client:
    """Requests to the app in process (httpx's ASGI transport, on trio)."""

    def __init__(self) -> None:
        # The pages need a node; the static files do not (no backend call).
        self.app = build_app(None)  # type: ignore[arg-type]

    def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                return await c.get(path, headers=headers)

        return trio.run(go)


@pytest.fixture(scope="module")
def client():
    return Client()


@pytest.mark.parametrize("name", FILES)
def test_each_file_is_served_whole_with_its_type_and_the_security_headers(client, name):
    r = client.get(f"/static/{name}")
    assert r.status_code == 200
    assert r.content == (STATIC / name).read_bytes()
    assert r.headers["content-type"] == MEDIA_TYPES[Path(name).suffix]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert r.headers["etag"].startswith('"')


def test_a_browser_holding_the_file_gets_304_and_a_changed_one_gets_it_again(client):
    etag = client.get("/static/app.js").headers["etag"]
    held = client.get("/static/app.js", headers={"if-none-match": f'"x", W/{etag}'})
    assert held.status_code == 304
    assert held.content == b""
    other = client.get("/static/app.js", headers={"if-none-match": '"stale"'})
    assert other.status_code == 200
    assert other.content == (STATIC / "app.js").read_bytes()


@pytest.mark.parametrize(
    "path",
    ["/static/nope.js", "/static/", "/static/../app.py", "/static/..%2fapp.py", "/static/a/b.js"],
)
def test_any_other_name_is_not_found(client, path):
    r = client.get(path)
    assert r.status_code == 404
    assert b"import" not in r.content


def test_a_file_of_unknown_type_is_refused_at_start(tmp_path):
    (tmp_path / "a.js").write_text("x")
    (tmp_path / "logo.png").write_bytes(b"\x89PNG")
    with pytest.raises(ValueError, match=r"no media type for '\.png'"):
        load_assets(tmp_path)


def test_the_etag_follows_the_content(tmp_path):
    (tmp_path / "a.js").write_text("one")
    first = load_assets(tmp_path)["a.js"].etag
    (tmp_path / "a.js").write_text("two")
    assert load_assets(tmp_path)["a.js"].etag != first
