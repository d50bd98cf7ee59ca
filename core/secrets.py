"""One scrubber for every secret the process knows: text that leaves or is stored goes through it.

Apps register *sources* (``secret_source``): functions that list the secret values they hold
(resolved model API keys, env values marked secret, MCP ``env``/``headers`` values, the password
or token in a configured URL). The values are compiled into one regular expression, rebuilt
only when something changed: a registry change announces ``SECRETS_CHANGED`` on the bus, every
worker marks its expression stale and rebuilds it on the next request (``request_started``, a
sync thread that may read the database) or, off any event loop, on the next scrub. On an event
loop scrubbing never touches the database, so it is safe anywhere: in an async view, in a log
filter, in the MCP manager's thread.

Besides the known values, URL userinfo (``https://user:pw@host``), secret-looking query
parameters (``?api_key=…``, ``&token=…``) and ``Bearer`` tokens are masked wherever they occur,
whether or not the value is known.

Text that leaves in pieces (a streamed answer's deltas) goes through a ``StreamScrubber``, which
holds back the end of what arrived until it cannot be the start of a secret.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger(__name__)

SECRETS_CHANGED = "core.secrets_changed"
# A shorter "secret" would mask ordinary words all over the text, and the mask would give it
# away (a reader who sees "…" where "admin" was expected has learnt it); docs/security.md.
MIN_SECRET_LEN = 6
# How far a stream may lag behind the model while the scrubber waits for a secret to end: only a
# "word" (no whitespace) longer than this can be cut, and then it is scrubbed in pieces.
STREAM_MAX_HOLD = 4096
STREAM_TAIL = 4096  # how much of a stream's end the open-secret patterns look at
STREAM_CONTEXT = 256  # characters already sent that a new piece is scrubbed with

_SECRET_NAME = r"[\w.-]*(?:key|token|secret|passw(?:or)?d|pwd|auth|signature|sig|credential)[\w.-]*"
_URL_USERINFO = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^/\s:@?#]*:)(?P<secret>[^/\s@?#]+)(?P<tail>@)", re.I)
_QUERY_SECRET = re.compile(rf"(?P<head>[?&;]{_SECRET_NAME}=)(?P<secret>[^&#\s\"'<>]+)(?P<tail>)", re.I)
_BEARER = re.compile(r"(?P<head>\bBearer\s+)(?P<secret>[A-Za-z0-9._~+/=-]{8,})(?P<tail>)")
_GENERIC = (_URL_USERINFO, _QUERY_SECRET, _BEARER)
# On a stream's path (every delta) each pattern runs only where the text it must contain occurs:
# prose mostly has none of them.
_ANCHORS = ((_URL_USERINFO, "://"), (_QUERY_SECRET, "="), (_BEARER, "Bearer"))
# The same three at the very end of a text, their secret perhaps still being written. The first
# two hold no whitespace, so they lie within the text's last word.
_OPEN_IN_WORD = (
    (re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@?#]*:(?P<secret>[^/\s@?#]*)\Z", re.I), "://"),
    (re.compile(rf"[?&;]{_SECRET_NAME}=(?P<secret>[^&#\s\"'<>]*)\Z", re.I), "="),
)
_OPEN_BEARER = re.compile(r"Bearer\s+(?P<secret>[A-Za-z0-9._~+/=-]*)\Z")

Source = Callable[[], Iterable[str]]
_sources: list[Source] = []


def mask(value: str) -> str:
    """``sk-…f3a9`` for a long value, ``…`` for a short one: enough to recognise, not to use."""
    if not value:
        return ""
    if len(value) < 12:
        return "…"
    return f"{value[:3]}…{value[-4:]}"


def url_secrets(url: str) -> list[str]:
    """The password in ``url``'s userinfo and the values of its secret-looking query parameters."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return []
    found = [password] if password else []
    found += [v for k, v in parse_qsl(parts.query) if re.fullmatch(_SECRET_NAME, k, re.I)]
    return found


class Scrubber:
    """Known values and the generic patterns, replaced by their masked form."""

    def __init__(self) -> None:
        self._known: re.Pattern[str] | None = None
        self._longest = 0  # characters of the longest known value
        self._by_first: dict[str, tuple[str, ...]] = {}  # known values by their first character
        self._firsts: re.Pattern[str] | None = None  # any of those first characters
        self._stale = True
        self._lock = threading.Lock()
        self._local = threading.local()  # set while this thread refreshes (its queries log too)

    @property
    def stale(self) -> bool:
        return self._stale

    @property
    def known(self) -> re.Pattern[str] | None:
        """The known values as one expression (refreshed first where that is safe)."""
        if self._stale:
            self._refresh_if_safe()
        return self._known

    def mark_stale(self) -> None:
        self._stale = True

    def set_values(self, values: Iterable[str]) -> None:
        wanted = sorted({v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LEN}, key=len, reverse=True)
        # Longest first, so a secret that contains another is masked whole.
        self._known = re.compile("|".join(map(re.escape, wanted))) if wanted else None
        self._longest = len(wanted[0]) if wanted else 0
        by_first: dict[str, list[str]] = {}
        for value in wanted:
            by_first.setdefault(value[0], []).append(value)
        self._by_first = {first: tuple(values) for first, values in by_first.items()}
        self._firsts = re.compile("[" + "".join(map(re.escape, by_first)) + "]") if by_first else None
        self._stale = False

    def refresh(self) -> None:
        """Ask every source again (sync: sources may read the database)."""
        if getattr(self._local, "busy", False):
            return
        self._local.busy = True
        try:
            with self._lock:
                values: list[str] = []
                for source in _sources:
                    try:
                        values.extend(source())
                    except Exception:  # e.g. no database yet (migrate, checks): the next change retries
                        log.debug("secret source %s failed", getattr(source, "__name__", source), exc_info=True)
                self.set_values(values)
        finally:
            self._local.busy = False

    def _refresh_if_safe(self) -> None:
        try:
            asyncio.get_running_loop()
            return  # no database on an event loop: the next request's start refreshes
        except RuntimeError:
            self.refresh()

    def scrub(self, text: str) -> str:
        if not text:
            return text
        if self._stale:
            self._refresh_if_safe()
        known = self._known
        if known is not None:
            text = known.sub(lambda m: mask(m.group(0)), text)
        for pattern in _GENERIC:
            text = pattern.sub(_mask_group, text)
        return text


    def stream_cut(self, text: str, context: str = "") -> int:
        """Where ``text``, the start of a longer text still arriving, may be cut so that the part
        before the cut can go out now: nothing after the cut can complete a secret that begins
        before it. Held back, and only then: the longest end of ``text`` that is the start of a
        known value; a URL password, secret query value or ``Bearer`` token still being written
        (from its first character; its head may be in ``context``, the text sent before); and
        any known value the cut would run through. Ordinary text goes out as it comes."""
        if self._stale:
            self._refresh_if_safe()
        cut = len(text)
        window = max(0, len(text) - max(self._longest - 1, 0))
        # The leftmost start of a known value wins; only where a value's first character is (a
        # scan in C: a Python loop over every character was a sixth of a streamed piece's cost).
        # ``.get``: a refresh in another thread may replace the table between the two reads.
        for first in self._firsts.finditer(text, window) if self._firsts is not None else ():
            i = first.start()
            if any(v.startswith(text[i:]) for v in self._by_first.get(text[i], ())):
                cut = i
                break
        joined = context + text  # "Bearer" may have gone out, its token not yet
        floor = max(0, len(joined) - STREAM_TAIL)
        word = len(joined)
        while word > floor and not joined[word - 1].isspace():
            word -= 1
        opened = [pattern.search(joined, word) for pattern, anchor in _OPEN_IN_WORD if anchor in joined[word:]]
        bearer = joined.rfind("Bearer", floor)
        if bearer >= 0 and (bearer == 0 or not joined[bearer - 1].isalnum()):
            opened.append(_OPEN_BEARER.search(joined, bearer))
        for m in opened:
            if m:
                cut = min(cut, max(0, m.start("secret") - len(context)))
        # Bounded lag: a giant "word" goes in pieces; the start of a known value never does.
        cut = max(cut, len(text) - max(STREAM_MAX_HOLD, self._longest - 1))
        return _before_matches(text, cut, (self._known,)) if self._known is not None else cut


def _before_matches(text: str, cut: int, patterns: Iterable[re.Pattern[str]]) -> int:
    """``cut``, moved back to the start of every match of ``patterns`` that runs through it."""
    moved = True
    while moved and cut > 0:
        moved = False
        for pattern in patterns:
            for m in pattern.finditer(text):
                if m.start() < cut < m.end():
                    cut, moved = m.start(), True
    return max(cut, 0)


class StreamScrubber:
    """``scrub`` for text that arrives in pieces: a secret split across two pieces would match
    in neither, so ``feed`` answers only what is safe to let go and holds the rest back
    (``Scrubber.stream_cut``); ``flush`` lets it go when the text ends.

    What went out is kept as context (its last ``STREAM_CONTEXT`` characters): a generic
    pattern whose head went out earlier (``https://bob:``, ``Bearer``) still masks the secret
    that arrives after it."""

    def __init__(self) -> None:
        self._held = ""
        self._sent = ""

    def feed(self, piece: str) -> str:
        text = self._held + piece
        cut = scrubber.stream_cut(text, self._sent)
        self._held = text[cut:]
        return self._release(text[:cut])

    def flush(self) -> str:
        held, self._held = self._held, ""
        return self._release(held)

    def _release(self, text: str) -> str:
        if not text:
            return text
        known = scrubber.known
        if known is not None:
            text = known.sub(lambda m: mask(m.group(0)), text)
        # The generic patterns over context + text; only secrets that begin in ``text`` are
        # masked (the context went out already, as it was), so the context keeps its length.
        start = len(self._sent)
        joined = self._sent + text
        for pattern, anchor in _ANCHORS:
            if anchor in joined:
                joined = pattern.sub(lambda m: _mask_group(m) if m.start("secret") >= start else m.group(0), joined)
        out = joined[start:]
        self._sent = joined[-STREAM_CONTEXT:]
        return out


def _mask_group(m: re.Match[str]) -> str:
    return f"{m.group('head')}{mask(m.group('secret'))}{m.group('tail')}"


scrubber = Scrubber()


def secret_source(fn: Source) -> Source:
    """Register ``fn`` as a source of secret values (call it from an ``AppConfig.ready``)."""
    _sources.append(fn)
    scrubber.mark_stale()
    return fn


def scrub(text: str) -> str:
    """``text`` with every known secret, URL password, secret query value and Bearer token masked."""
    return scrubber.scrub(text)


def scrub_data(value: Any) -> Any:
    """``scrub`` applied to every string inside JSON-like data (dicts, lists, strings)."""
    if isinstance(value, str):
        return scrubber.scrub(value)
    if isinstance(value, dict):
        return {k: scrub_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_data(v) for v in value]
    return value


def refresh_if_stale(**_: Any) -> None:
    """Rebuild the expression if a registry changed (a ``request_started`` receiver: sync)."""
    if scrubber.stale:
        scrubber.refresh()


class SecretsFilter(logging.Filter):
    """A logging filter (installed on the handlers in settings ``LOGGING``): the record's message,
    arguments and traceback are scrubbed before any handler writes them."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit the format: logging reports it
            return True
        record.msg, record.args = scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


def install() -> None:
    """Wire the scrubber (from ``CoreConfig.ready``): rebuilt at the start of the first request
    after a change this worker heard of, and after every bus resync in case it missed one."""
    from django.core.signals import request_started

    from . import bus

    @bus.on(SECRETS_CHANGED)
    def _changed(message: dict[str, Any]) -> None:
        scrubber.mark_stale()

    bus.on_resync(scrubber.mark_stale)
    request_started.connect(refresh_if_stale, dispatch_uid="agentsite-secrets-refresh")


def announce_change() -> None:
    """Tell every worker (this one included) that the set of secrets changed (sync, after commit)."""
    from django.db import transaction

    from . import bus

    transaction.on_commit(lambda: bus.broadcast({"type": SECRETS_CHANGED}))
