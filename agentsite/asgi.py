"""ASGI entry point: Daphne serves Django through Channels' ProtocolTypeRouter."""

import gc
import os
from typing import Any

from channels.routing import ProtocolTypeRouter
from django.core.asgi import get_asgi_application

from core import bus

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentsite.settings")
django_asgi_app = get_asgi_application()

from inference.mcp_endpoint import endpoint as mcp_app  # noqa: E402  (needs the app registry ready)
from registry import cache as registry_cache  # noqa: E402  (needs the app registry ready)

from . import daphne_factory, early_refusal  # noqa: E402  (needs the app registry ready)
from .guard import guard  # noqa: E402  (needs the app registry ready)
from .hotpath import HOT_PATHS, HotPathHandler  # noqa: E402  (needs the app registry ready)

hot_path_app = HotPathHandler()
# Daphne imports this module before it builds its HTTP factory: from then on it refuses a
# stranger's big request from its headers instead of reading the body first.
early_refusal.install()
daphne_factory.install()


async def http_app(scope, receive, send):
    bus.listener_ensure()  # this worker hears the others from its first request on (nothing without Redis)
    path = scope["path"]
    app: Any
    if path == "/mcp" or path.startswith("/mcp/"):
        app = mcp_app  # the site as an MCP server (the guard has authenticated the key)
    else:
        app = hot_path_app if path in HOT_PATHS else django_asgi_app
    await app(scope, receive, send)


def _one_look(app: Any) -> Any:
    async def looked(scope, receive, send):
        with registry_cache.one_look_per_request():
            await app(scope, receive, send)

    return looked


application = ProtocolTypeRouter({"http": _one_look(guard(http_app))})

# Everything loaded so far (Django, DRF, the apps: about 240,000 objects) lives as long as the
# worker. Left in the collector's oldest generation, each full collection walked all of it (about
# 180 ms on a 2-core machine, every stream stalled meanwhile); frozen, a collection walks only what
# requests made since. Garbage from the imports is collected first, so nothing is frozen in vain.
gc.collect()
gc.freeze()
