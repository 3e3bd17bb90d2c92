"""The web app's static files (`web/static`: scripts and the stylesheet), read once when
the app is built and served from memory.

25 KB held for the daemon's life cost less than serving them from disk: Starlette's
`StaticFiles` reads each file in a worker thread and guesses its type with `mimetypes`,
which loads the system's table of a thousand types on the first request; together
about 1 MB of the daemon's resident memory (docs/benchmarks.md, issue 15). A file
changed on disk is served from the next start on, as after an upgrade.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["MEDIA_TYPES", "Asset", "asset_endpoint", "load_assets"]

# The types of the files the app ships; a file of another type is an error at start-up
# (a new kind of asset gets its type here), not a download of unknown type.
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str  # quoted, as the header carries it


def load_assets(directory: Path) -> dict[str, Asset]:
    """Every file of `directory` by name, with its type and an ETag of its content.

    Raises:
        ValueError: a file whose type is not in `MEDIA_TYPES`.
    """
    assets = {}
    for path in sorted(directory.iterdir()):
        if not path.is_file():
            continue
        media_type = MEDIA_TYPES.get(path.suffix)
        if media_type is None:
            raise ValueError(f"{path}: no media type for {path.suffix!r} files in MEDIA_TYPES")
        body = path.read_bytes()
        etag = '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
        assets[path.name] = Asset(body, media_type, etag)
    return assets


def asset_endpoint(assets: Mapping[str, Asset]) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint of ``/static/{name}``: the asset, 304 when the browser holds this
    version (If-None-Match), 404 for any other name."""

    async def endpoint(request: Request) -> Response:
        asset = assets.get(request.path_params["name"])
        if asset is None:
            return Response("Not Found", status_code=404, media_type="text/plain")
        held = request.headers.get("if-none-match", "")
        if asset.etag in (tag.strip().removeprefix("W/") for tag in held.split(",")):
            return Response(status_code=304, headers={"etag": asset.etag})
        return Response(asset.body, media_type=asset.media_type, headers={"etag": asset.etag})

    return endpoint
