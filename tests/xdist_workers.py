"""Parallel test workers (pytest-xdist) must not share what the suite writes outside its database.

Loaded with ``-p`` (pyproject's addopts), so it runs in each worker before Django reads its
settings. pytest-django already gives every worker its own test database; this gives each its
own data folder (skills, session files, per-user scratch) and its own Redis database (the
cross-worker bus stream, quota counters and cache are keys, which Redis keeps per database).
Without xdist nothing changes.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

_worker = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", … in a worker process only

if _worker:
    _data = Path(os.environ.get("AGENTSITE_DATA_DIR") or Path(__file__).resolve().parent.parent / "var")
    os.environ["AGENTSITE_DATA_DIR"] = str(_data / f"test-{_worker}")
    _redis = os.environ.get("REDIS_URL")
    if _redis:
        # database 0 stays the one a developer's own server uses; 15 is the last of the default 16
        _index = 1 + int(_worker.removeprefix("gw")) % 15
        os.environ["REDIS_URL"] = urlparse(_redis)._replace(path=f"/{_index}").geturl()
