"""Login throttling that slows a password guesser without locking the owner out for good.

Every password login (the chat's /login/ and the admin's) goes through ``LockoutModelBackend``.
An attempt is counted against *subjects*, each with its own failure counter and lock:

- the account, for clients that have never logged in to it (``AGENTSITE_LOGIN_MAX_FAILURES``);
- the account, for its *known devices*: browsers holding the signed cookie that a successful
  login to it set. A stranger's failures never touch this counter, so the owner's usual browser
  keeps working while the account is locked for everyone else;
- the client address (``core.proxies.client_ip``: X-Forwarded-For only through
  ``AGENTSITE_TRUSTED_PROXIES``; an IPv6 client by its /64), for unknown clients only
  (``AGENTSITE_LOGIN_ADDRESS_MAX_FAILURES``), against one source guessing many usernames.

Once a subject reaches its limit, each further failure locks it for
``AGENTSITE_LOGIN_LOCKOUT_BASE_S`` × 2^(failures − limit), capped at ``AGENTSITE_LOGIN_LOCKOUT_S``.
A locked attempt is refused without checking the password and does not count. An attempt is
counted *before* its password is checked, and the lock it may trigger taken with an atomic
``cache.add``, so a burst of concurrent guesses cannot slip past the limit. A successful login
clears the account's counters (not the address's); staff lift locks from the admin's login
attempts list. Counters live in Django's cache (Redis when REDIS_URL is set, so every worker
agrees) and are forgotten a day after the last failure. Every attempt is recorded as an
``accounts.LoginAttempt`` row. Design: docs/security.md ("Login throttling").
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.decorators import sync_and_async_middleware

from core.proxies import client_ip

from .models import LoginAttempt

FAILURE_MEMORY_S = 24 * 3600  # a subject's failures are forgotten this long after the last one
KNOWN_DEVICE_COOKIE = "agentsite_known_device"
KNOWN_DEVICE_MAX_AGE_S = 180 * 24 * 3600
_KNOWN_DEVICE_SALT = "accounts.lockout.known-device"
_LOCK_ATTR = "_agentsite_login_lock"  # set on the request when an attempt is refused (read by accounts.forms)
_REMEMBER_ATTR = "_agentsite_known_device"  # the cookie value to set on this response
MAX_ATTEMPT_ROWS = 100_000  # besides the age limit, the attempts log never grows past this
_PRUNE_EVERY_S = 60


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


@dataclass(frozen=True)
class Subject:
    """Something failures are counted against: an account (unknown clients or known devices) or an address."""

    kind: str  # "account", "known-device" or "address"
    key: str
    limit: int

    @property
    def fails_key(self) -> str:
        return f"{self.key}:fails"

    @property
    def lock_key(self) -> str:
        return f"{self.key}:lock"


@dataclass(frozen=True)
class Lock:
    subject: Subject
    until: float

    @property
    def remaining_s(self) -> int:
        return max(1, math.ceil(self.until - time.time()))

    @property
    def message(self) -> str:
        whom = "from your network address" if self.subject.kind == "address" else "for this account"
        return f"Too many failed logins {whom}; try again in {_duration(self.remaining_s)}."


def lock_seconds(failures: int, limit: int) -> int:
    """How long the failure number ``failures`` locks a subject whose limit is ``limit``."""
    if failures < limit:
        return 0
    conf = settings.AGENTSITE
    return int(min(conf["LOGIN_LOCKOUT_BASE_S"] * 2 ** min(failures - limit, 32), conf["LOGIN_LOCKOUT_S"]))


def _address_key(address: str) -> str:
    ip = ipaddress.ip_address(address)
    if ip.version == 6:  # one IPv6 client usually holds a whole /64
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def account_subjects(username: str) -> tuple[Subject, Subject]:
    digest = _digest(username.lower())
    limit = settings.AGENTSITE["LOGIN_MAX_FAILURES"]
    return Subject("account", f"login:acct:{digest}", limit), Subject("known-device", f"login:known:{digest}", limit)


def address_subject(address: str) -> Subject:
    return Subject("address", f"login:addr:{_address_key(address)}", settings.AGENTSITE["LOGIN_ADDRESS_MAX_FAILURES"])


def subjects_for(username: str, address: str | None, known_device: bool) -> list[Subject]:
    account, known = account_subjects(username)
    if known_device:
        return [known]
    return [account] + ([address_subject(address)] if address else [])


def current_lock(subjects: list[Subject]) -> Lock | None:
    """The longest lock in force on any of the subjects."""
    now = time.time()
    found = cache.get_many([s.lock_key for s in subjects])
    locks = [Lock(s, found[s.lock_key]) for s in subjects if found.get(s.lock_key, 0) > now]
    return max(locks, key=lambda lock: lock.until) if locks else None


def _count(key: str) -> int:
    if cache.add(key, 1, FAILURE_MEMORY_S):
        return 1
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, FAILURE_MEMORY_S)
        return 1
    cache.touch(key, FAILURE_MEMORY_S)
    return count


def _uncount(key: str) -> None:
    try:
        cache.decr(key)
    except ValueError:
        pass


def begin_attempt(subjects: list[Subject]) -> tuple[Lock | None, list[str]]:
    """Counts the attempt as a failure before its password is checked (a success clears it).

    An attempt that reaches a subject's limit takes that subject's lock now, atomically; if a
    concurrent attempt holds it already, this one is refused (the Lock) and counts for nothing.
    Otherwise returns the lock keys this attempt took, for a success to release them.
    """
    counted: list[Subject] = []
    taken: list[str] = []
    for subject in subjects:
        failures = _count(subject.fails_key)
        counted.append(subject)
        seconds = lock_seconds(failures, subject.limit)
        if not seconds:
            continue
        until = time.time() + seconds
        if cache.add(subject.lock_key, until, seconds):
            taken.append(subject.lock_key)
            continue
        for done in counted:
            _uncount(done.fails_key)
        cache.delete_many(taken)
        return Lock(subject, cache.get(subject.lock_key) or until), []
    return None, taken


def attempt_succeeded(username: str, taken: list[str]) -> None:
    """The password was right: the account's counters start again; the address keeps its count."""
    account, known = account_subjects(username)
    cache.delete_many([account.fails_key, account.lock_key, known.fails_key, known.lock_key, *taken])


def lift(*, username: str | None = None, address: str | None = None) -> None:
    """Staff lift the locks (and forget the failures) of an account and/or a client address."""
    subjects: list[Subject] = []
    if username:
        subjects.extend(account_subjects(username))
    if address:
        subjects.append(address_subject(address))
    cache.delete_many([key for s in subjects for key in (s.fails_key, s.lock_key)])


def lock_of(request: HttpRequest | None) -> Lock | None:
    """The lock that refused this request's login attempt, if one did."""
    return getattr(request, _LOCK_ATTR, None)


# ---- known devices --------------------------------------------------------------------------


def _device_token(user: Any) -> dict[str, str]:
    # The session auth hash changes with the password: a password change forgets every device.
    return {"u": user.get_username().lower(), "p": _digest(user.get_session_auth_hash())}


def is_known_device(request: HttpRequest, username: str) -> bool:
    raw = request.COOKIES.get(KNOWN_DEVICE_COOKIE)
    if not raw:
        return False
    try:
        token = signing.loads(raw, salt=_KNOWN_DEVICE_SALT, max_age=KNOWN_DEVICE_MAX_AGE_S)
    except signing.BadSignature:
        return False
    if not isinstance(token, dict) or token.get("u") != username.lower():
        return False
    user_model = get_user_model()
    try:
        user = user_model._default_manager.get_by_natural_key(username)
    except user_model.DoesNotExist:
        return False
    return token == _device_token(user)


@receiver(user_logged_in)
def _remember_device(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is not None:
        setattr(request, _REMEMBER_ATTR, signing.dumps(_device_token(user), salt=_KNOWN_DEVICE_SALT))


def _set_device_cookie(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    value = getattr(request, _REMEMBER_ATTR, None)
    if value:
        response.set_cookie(
            KNOWN_DEVICE_COOKIE, value, max_age=KNOWN_DEVICE_MAX_AGE_S, httponly=True, samesite="Lax",
            secure=settings.SESSION_COOKIE_SECURE,
        )
    return response


@sync_and_async_middleware
def known_device_cookie(get_response: Callable) -> Callable:
    """Sets the known-device cookie on the response to a successful login."""
    if iscoroutinefunction(get_response):

        async def amiddleware(request: HttpRequest) -> HttpResponse:
            return _set_device_cookie(request, await get_response(request))

        return amiddleware

    def middleware(request: HttpRequest) -> HttpResponse:
        return _set_device_cookie(request, get_response(request))

    return middleware


# ---- the attempts log -----------------------------------------------------------------------


def record(*, username: str, address: str | None, outcome: str, known_device: bool, detail: str = "") -> None:
    LoginAttempt.objects.create(
        username=username[:150], client_address=address, outcome=outcome, known_device=known_device, detail=detail[:200],
    )
    if cache.add("login:attempts-pruned", 1, _PRUNE_EVERY_S):  # at most once a minute across workers
        prune_attempts()


def prune_attempts() -> None:
    """Drops rows older than AGENTSITE_LOGIN_ATTEMPTS_DAYS and all but the newest MAX_ATTEMPT_ROWS."""
    cutoff = timezone.now() - timedelta(days=settings.AGENTSITE["LOGIN_ATTEMPTS_DAYS"])
    LoginAttempt.objects.filter(at__lt=cutoff).delete()
    oldest_kept = list(LoginAttempt.objects.order_by("-id").values_list("id", flat=True)[MAX_ATTEMPT_ROWS - 1 : MAX_ATTEMPT_ROWS])
    if oldest_kept:
        LoginAttempt.objects.filter(id__lt=oldest_kept[0]).delete()


def _refuse(request: HttpRequest | None, lock: Lock, username: str, address: str | None, known_device: bool) -> None:
    if request is not None:
        setattr(request, _LOCK_ATTR, lock)
    # One row per lock, however often a locked login is retried: the log stays small under attack.
    if cache.add(f"{lock.subject.lock_key}:logged:{int(lock.until)}", 1, lock.remaining_s):
        record(username=username, address=address, outcome=LoginAttempt.Outcome.LOCKED, known_device=known_device,
               detail=f"{lock.subject.kind} locked for {lock.remaining_s} s; further attempts in that time not logged")
    raise PermissionDenied(lock.message)  # stops the backend chain: no password check at all


class LockoutModelBackend(ModelBackend):
    def authenticate(self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if not username or password is None:
            return None
        address = client_ip(request) if request is not None else None
        known = request is not None and is_known_device(request, username)
        subjects = subjects_for(username, address, known)
        lock = current_lock(subjects)
        taken: list[str] = []
        if lock is None:
            lock, taken = begin_attempt(subjects)
        if lock is not None:
            _refuse(request, lock, username, address, known)
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            record(username=username, address=address, outcome=LoginAttempt.Outcome.FAILED, known_device=known)
            return None
        attempt_succeeded(username, taken)
        record(username=username, address=address, outcome=LoginAttempt.Outcome.SUCCESS, known_device=known)
        return user

