"""The members' web app, served by the daemon: pages over the node's control ops,
static assets in `web/static`, and the rules of who may change what."""

from web.app import Backend, build_app
from web.serve import serve_web

__all__ = ["Backend", "build_app", "serve_web"]
