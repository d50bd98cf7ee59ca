from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse

from . import bus
from .db import db_async


@db_async
def _database_ok() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def healthz(request: HttpRequest) -> JsonResponse:
    """No auth: load balancers call it. 503 when the database can't be reached.

    ``bus`` is this worker's cross-worker listener (``core.bus.status``: no I/O, no secrets). It
    does not change the status code: a Redis outage hits every worker alike, and requests still
    work (only cross-worker signals wait), so taking workers out of rotation would not help;
    alert on ``bus.listener != "up"`` instead (docs/deploy.md).

    Async, and served without the middleware stack (``agentsite.hotpath``): the database check
    is the one thread hop, so a probe stays cheap and quick when the worker is busy.
    """
    figures = bus.status()
    try:
        await _database_ok()
        return JsonResponse({"status": "ok", "database": "ok", "bus": figures})
    except Exception as exc:  # noqa: BLE001 - any DB failure means "not ready"
        return JsonResponse({"status": "error", "database": "unavailable", "error": type(exc).__name__, "bus": figures},
                            status=503)
