from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse


def healthz(request: HttpRequest) -> JsonResponse:
    """No auth: load balancers call it. 503 when the database can't be reached."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return JsonResponse({"status": "ok", "database": "ok"})
    except Exception as exc:  # noqa: BLE001 - any DB failure means "not ready"
        return JsonResponse({"status": "error", "database": "unavailable", "error": type(exc).__name__}, status=503)
