"""Apply the env store to this process once, before the first request is served."""

from __future__ import annotations

import logging
import threading

from django.core.signals import request_started
from django.db.utils import DatabaseError

log = logging.getLogger(__name__)
_applied = threading.Event()


def apply_env_store_once(**kwargs) -> None:  # noqa: ANN003
    if _applied.is_set():
        return
    _applied.set()
    from .services import env_apply_all

    try:
        count = env_apply_all()
    except DatabaseError:  # not migrated yet: nothing to apply
        return
    if count:
        log.info("applied %d environment variable(s) from the database", count)


request_started.connect(apply_env_store_once, dispatch_uid="agentsite-env-apply")
