"""Login throttling through HTTP (accounts/lockout.py, docs/security.md "Login throttling").

The test client's peer is 127.0.0.1 unless a test passes another REMOTE_ADDR; limits are small
here (3 failures per account, 6 per address) and the first lock lasts 4 minutes unless a test
shortens it to wait for it to expire.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.http import HttpResponse
from django.test import Client

from accounts.lockout import KNOWN_DEVICE_COOKIE, lock_seconds
from accounts.models import LoginAttempt

WRONG_LOGIN = "didn't match"
ADMIN_WRONG_LOGIN = "Please enter the correct username and password"
ACCOUNT_LOCKED = "Too many failed logins for this account; try again in"
ADDRESS_LOCKED = "Too many failed logins from your network address; try again in"


@pytest.fixture(autouse=True)
def throttle(settings: Any) -> Iterator[None]:
    cache.clear()
    # A fast hasher: the short-lock tests count seconds, and a real hash takes a good part of one.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.AGENTSITE = {
        **settings.AGENTSITE, "TRUSTED_PROXIES": [], "LOGIN_MAX_FAILURES": 3, "LOGIN_ADDRESS_MAX_FAILURES": 6,
        "LOGIN_LOCKOUT_BASE_S": 240, "LOGIN_LOCKOUT_S": 900,
    }
    yield
    cache.clear()


def shorten_locks(settings: Any, base_s: int, cap_s: int) -> None:
    settings.AGENTSITE = {**settings.AGENTSITE, "LOGIN_LOCKOUT_BASE_S": base_s, "LOGIN_LOCKOUT_S": cap_s}


def log_in(client: Client, username: str, password: str, path: str = "/login/", **extra: str) -> HttpResponse:
    return client.post(path, {"username": username, "password": password}, **extra)  # type: ignore[return-value]  # the test client's response subclass


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.parametrize(("path", "wrong"), [("/login/", WRONG_LOGIN), ("/admin/login/", ADMIN_WRONG_LOGIN)])
def test_a_locked_login_says_locked_and_for_how_long(staff_user, path: str, wrong: str) -> None:
    client = Client()
    for _ in range(3):
        res = log_in(client, "staff", "wrong", path)
        assert res.status_code == 200 and wrong in res.content.decode()
    # even the right password is refused now, without checking it, and the page says why
    res = log_in(client, "staff", "staff-pass-123", path)
    page = res.content.decode()
    assert res.status_code == 200 and not logged_in(client)
    assert f"{ACCOUNT_LOCKED} 4 minutes." in page
    assert wrong not in page
    cache.clear()
    log_in(client, "staff", "staff-pass-123", path)
    assert logged_in(client)


def test_api_keys_are_unaffected_by_password_lockout(staff_user, staff_api) -> None:
    for _ in range(6):
        Client().post("/admin/login/", {"username": "staff", "password": "wrong"})
    assert f"{ACCOUNT_LOCKED} 4 minutes." in log_in(Client(), "staff", "staff-pass-123").content.decode()
    assert staff_api.get("/v1/models").status_code == 200


def test_rotating_x_forwarded_for_from_an_untrusted_peer_does_not_bypass_the_address_limit(alice) -> None:
    attacker = Client(REMOTE_ADDR="203.0.113.5")
    for i in range(6):  # a new username and a new "address" every time
        res = log_in(attacker, f"user{i}", "guess", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}")
        assert WRONG_LOGIN in res.content.decode()
    res = log_in(attacker, "user6", "guess", HTTP_X_FORWARDED_FOR="198.51.100.99")
    assert f"{ADDRESS_LOCKED} 4 minutes." in res.content.decode()
    # the header was never believed: every attempt is logged against the real peer
    assert set(LoginAttempt.objects.values_list("client_address", flat=True)) == {"203.0.113.5"}
    # the lock is on that address only
    owner = Client(REMOTE_ADDR="192.0.2.10")
    log_in(owner, "alice", "alice-pass-123")
    assert logged_in(owner)


def test_a_stranger_cannot_lock_the_owner_out_of_her_own_browser(alice) -> None:
    browser = Client(REMOTE_ADDR="192.0.2.10")
    log_in(browser, "alice", "alice-pass-123")
    assert logged_in(browser) and browser.cookies[KNOWN_DEVICE_COOKIE].value
    browser.post("/logout/")
    assert not logged_in(browser)

    for i in range(10):  # from many "addresses", and from many real ones
        stranger = Client(REMOTE_ADDR=f"203.0.113.{i}")
        log_in(stranger, "alice", "guess", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}")
    # the account is locked for everyone else, for a bounded time ...
    res = log_in(Client(REMOTE_ADDR="192.0.2.10"), "alice", "alice-pass-123")
    assert ACCOUNT_LOCKED in res.content.decode()
    assert LoginAttempt.objects.filter(username="alice", outcome="locked").exists()
    # ... but not for the browser she logged in with before
    log_in(browser, "alice", "alice-pass-123")
    assert logged_in(browser)
    assert LoginAttempt.objects.filter(username="alice", outcome="success", known_device=True).exists()


def test_a_known_device_cookie_is_for_one_account_and_one_password(alice, bob) -> None:
    browser = Client()
    log_in(browser, "alice", "alice-pass-123")
    browser.post("/logout/")
    for _ in range(3):
        log_in(Client(REMOTE_ADDR="203.0.113.5"), "bob", "guess")
    # alice's cookie does not make her browser a known device for bob
    assert ACCOUNT_LOCKED in log_in(browser, "bob", "bob-pass-123").content.decode()
    # and a password change forgets the devices that knew the old one
    alice.set_password("alice-new-pass-456")
    alice.save()
    for _ in range(3):
        log_in(Client(REMOTE_ADDR="203.0.113.5"), "alice", "guess")
    assert ACCOUNT_LOCKED in log_in(browser, "alice", "alice-new-pass-456").content.decode()


def test_the_owner_logs_in_again_once_a_short_lock_expires(settings, alice) -> None:
    shorten_locks(settings, base_s=1, cap_s=60)
    client = Client()
    for _ in range(3):
        log_in(client, "alice", "guess")
    for _ in range(5):  # retrying while locked neither checks the password nor extends the lock
        assert f"{ACCOUNT_LOCKED} 1 second." in log_in(client, "alice", "alice-pass-123").content.decode()
    time.sleep(1.1)
    log_in(client, "alice", "alice-pass-123")
    assert logged_in(client)
    # the success cleared the account's counter: two more failures do not lock it
    client.post("/logout/")
    fresh = Client(REMOTE_ADDR="192.0.2.20")  # (127.0.0.1 is 2 failures away from its own address limit)
    for _ in range(2):
        assert WRONG_LOGIN in log_in(fresh, "alice", "guess").content.decode()
    log_in(fresh, "alice", "alice-pass-123")
    assert logged_in(fresh)


def test_each_failure_after_the_limit_doubles_the_lock_up_to_the_cap(settings, alice) -> None:
    shorten_locks(settings, base_s=1, cap_s=60)
    client = Client()
    for _ in range(3):
        log_in(client, "alice", "guess")
    assert f"{ACCOUNT_LOCKED} 1 second." in log_in(client, "alice", "guess").content.decode()
    time.sleep(1.1)
    assert WRONG_LOGIN in log_in(client, "alice", "guess").content.decode()  # checked, failed, locked again
    assert f"{ACCOUNT_LOCKED} 2 seconds." in log_in(client, "alice", "guess").content.decode()
    shorten_locks(settings, base_s=60, cap_s=900)
    assert [lock_seconds(n, 3) for n in (1, 2, 3, 4, 5, 6, 7, 8, 50)] == [0, 0, 60, 120, 240, 480, 900, 900, 900]


def test_with_a_trusted_proxy_the_forwarded_address_is_used(settings, alice) -> None:
    settings.AGENTSITE = {**settings.AGENTSITE, "TRUSTED_PROXIES": ["127.0.0.1", "10.0.0.0/8"]}
    proxy = Client()  # peer 127.0.0.1: nginx; 10.1.2.3 is a load balancer in front of it
    for i in range(6):  # whatever the client writes on the left is ignored
        log_in(proxy, f"user{i}", "guess", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}, 203.0.113.7, 10.1.2.3")
    res = log_in(proxy, "user6", "guess", HTTP_X_FORWARDED_FOR="198.51.100.99, 203.0.113.7, 10.1.2.3")
    assert f"{ADDRESS_LOCKED} 4 minutes." in res.content.decode()
    assert set(LoginAttempt.objects.values_list("client_address", flat=True)) == {"203.0.113.7"}
    # another client behind the same proxy is not locked
    log_in(proxy, "alice", "alice-pass-123", HTTP_X_FORWARDED_FOR="203.0.113.8, 10.1.2.3")
    assert logged_in(proxy)
    assert LoginAttempt.objects.get(outcome="success").client_address == "203.0.113.8"
    # a peer that is not a trusted proxy is its own address, whatever it forwards
    log_in(Client(REMOTE_ADDR="192.0.2.1"), "user7", "guess", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert LoginAttempt.objects.filter(username="user7").get().client_address == "192.0.2.1"


def test_staff_see_the_attempts_and_lift_a_lock(admin_client, alice) -> None:
    stranger = Client(REMOTE_ADDR="203.0.113.5")
    for _ in range(3):
        log_in(stranger, "alice", "guess")
    owner = Client(REMOTE_ADDR="192.0.2.10")
    assert ACCOUNT_LOCKED in log_in(owner, "alice", "alice-pass-123").content.decode()

    listing = admin_client.get("/admin/accounts/loginattempt/", {"outcome": "failed"})
    assert listing.status_code == 200
    page = listing.content.decode()
    assert "203.0.113.5" in page and "alice" in page and "192.0.2.10" not in page
    assert "192.0.2.10" in admin_client.get("/admin/accounts/loginattempt/", {"outcome": "locked"}).content.decode()
    assert admin_client.get("/admin/accounts/loginattempt/add/").status_code == 403

    rows = list(LoginAttempt.objects.filter(username="alice").values_list("pk", flat=True))
    res = admin_client.post("/admin/accounts/loginattempt/", {"action": "lift_locks", "_selected_action": rows}, follow=True)
    assert "Login locks lifted" in res.content.decode()
    log_in(owner, "alice", "alice-pass-123")
    assert logged_in(owner)


def test_the_attempts_log_stays_bounded(settings, alice) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from accounts.lockout import prune_attempts

    old = LoginAttempt.objects.create(username="alice", outcome="failed", client_address="192.0.2.1")
    LoginAttempt.objects.filter(pk=old.pk).update(at=timezone.now() - timedelta(days=31))
    for _ in range(20):  # retries while locked are logged once per lock
        log_in(Client(), "alice", "guess")
    assert LoginAttempt.objects.filter(outcome="failed").count() == 3
    assert LoginAttempt.objects.filter(outcome="locked").count() == 1
    prune_attempts()
    assert not LoginAttempt.objects.filter(pk=old.pk).exists()
