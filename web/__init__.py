"""The members' web app, served by the daemon: pages over the node's control ops,
static assets in `web/static`, and the rules of who may change what."""

# First: Hypercorn's HTTP/2 and WebSocket parts stay unloaded until a client asks
# for them (node/net/deferred.py).
import node.net.deferred  # noqa: F401
from web.app import Backend, build_app
from web.serve import serve_web

__all__ = ["Backend", "build_app", "serve_web"]
