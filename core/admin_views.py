"""Admin pages of the core app: the cross-worker bus, as every worker reports it."""

from __future__ import annotations

import redis
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from . import bus


def bus_page(request: HttpRequest) -> HttpResponse:
    """Staff only (wired through ``admin.site.admin_view``): this worker's figures, and every
    worker's as last published to Redis (a worker that stopped reporting shows as gone)."""
    try:
        workers, error = bus.workers(), ""
    except redis.RedisError as exc:
        workers, error = [], type(exc).__name__
    context = {
        **admin.site.each_context(request),
        "title": "Cross-worker bus",
        "here": bus.status(),
        "worker_id": bus.WORKER_ID,
        "workers": workers,
        "error": error,
        "heartbeat_s": bus.HEARTBEAT_S,
    }
    return TemplateResponse(request, "admin/core/bus.html", context)
