"""Behind TLS and a reverse proxy: Secure cookies, HSTS, and which forwarding headers are believed.

docs/deploy.md ("TLS and the reverse proxy"); the settings are read from the environment, so
the first test starts a fresh interpreter, and the last one a real Daphne worker (``manage.py
serve``), which must not believe X-Forwarded-For either.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import httpx
import pytest
from django.core.cache import cache
from django.test import Client

from accounts.lockout import KNOWN_DEVICE_COOKIE
from tests.e2e.conftest import ROOT, LiveServer

PRINT_SETTINGS = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps([s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER, "
    "s.AGENTSITE['TRUSTED_PROXIES']]))"
)


def settings_with(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AGENTSITE_") or k == "AGENTSITE_DATA_DIR"}
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**clean, "DJANGO_SETTINGS_MODULE": "agentsite.settings", **env},
    )


def test_secure_cookies_hsts_and_trusted_proxies_come_from_the_environment() -> None:
    default = settings_with()
    assert json.loads(default.stdout) == [False, False, 0, None, []]
    behind_tls = settings_with(AGENTSITE_SECURE_COOKIES="1", AGENTSITE_HSTS_SECONDS="31536000",
                               AGENTSITE_TRUSTED_PROXIES="127.0.0.1, 10.0.0.0/8,::1")
    assert json.loads(behind_tls.stdout) == [True, True, 31536000, ["HTTP_X_FORWARDED_PROTO", "https"],
                                             ["127.0.0.1", "10.0.0.0/8", "::1"]]
    bad = settings_with(AGENTSITE_TRUSTED_PROXIES="nginx.internal")
    assert bad.returncode != 0 and "AGENTSITE_TRUSTED_PROXIES" in bad.stderr


@pytest.fixture
def behind_tls(settings: Any) -> None:
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.AGENTSITE = {**settings.AGENTSITE, "TRUSTED_PROXIES": ["127.0.0.1"]}
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_behind_tls_cookies_are_secure_and_hsts_is_sent(behind_tls, alice) -> None:
    cache.clear()
    proxy = Client()  # peer 127.0.0.1, the trusted proxy
    page = proxy.get("/login/", HTTP_X_FORWARDED_PROTO="https")
    assert page.headers["Strict-Transport-Security"] == "max-age=3600"
    assert page.cookies["csrftoken"]["secure"]
    res = proxy.post("/login/", {"username": "alice", "password": "alice-pass-123"}, HTTP_X_FORWARDED_PROTO="https")
    assert res.status_code == 302
    assert res.cookies["sessionid"]["secure"] and res.cookies[KNOWN_DEVICE_COOKIE]["secure"]
    assert res.cookies[KNOWN_DEVICE_COOKIE]["httponly"]


def test_only_a_trusted_proxy_can_say_the_request_was_https(behind_tls) -> None:
    stranger = Client(REMOTE_ADDR="192.0.2.1")
    assert "Strict-Transport-Security" not in stranger.get("/login/", HTTP_X_FORWARDED_PROTO="https").headers
    assert "Strict-Transport-Security" in Client().get("/login/", HTTP_X_FORWARDED_PROTO="https").headers


def test_a_real_worker_does_not_believe_x_forwarded_for(transactional_db) -> None:
    cache.clear()  # with REDIS_URL set, the worker shares this cache
    server = LiveServer(extra_env={"AGENTSITE_LOGIN_ADDRESS_MAX_FAILURES": "3", "AGENTSITE_LOGIN_MAX_FAILURES": "3"})
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            answers = []
            for i in range(4):  # a new username and a new forwarded "address" every time
                form = client.get("/login/")
                token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
                assert token
                res = client.post("/login/", data={"username": f"user{i}", "password": "guess", "csrfmiddlewaretoken": token[1]},
                                  headers={"X-Forwarded-For": f"198.51.100.{i}"})
                answers.append(res.text)
        assert all("didn't match" in a for a in answers[:3])
        assert "Too many failed logins from your network address" in answers[3]
    finally:
        server.stop()
        cache.clear()
