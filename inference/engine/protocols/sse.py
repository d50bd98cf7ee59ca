"""Server-Sent Events parsing (WHATWG rules, docs/protocols.md E.1) and a strict line splitter.

We split lines ourselves instead of using ``httpx.Response.aiter_lines``: that one follows
``str.splitlines`` and also breaks on U+2028, U+0085 and friends, which may appear unescaped
inside a JSON string. Here only CR, LF and CRLF end a line, even when a chunk ends between
the CR and the LF.

Lines are split on the raw bytes, before decoding: CR and LF never occur inside a UTF-8
multi-byte sequence, so this is exact, and ``bytes.split`` does in C what a per-character
Python loop would do per chunk (issue 19: this is on every streamed chunk's path).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

_EOL = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    type: str
    data: str
    last_event_id: str = ""


class LineSplitter:
    """Incremental CR / LF / CRLF line splitter over raw UTF-8 bytes; yields decoded lines."""

    def __init__(self) -> None:
        self._head: list[bytes] = []  # the unfinished last line, as read (no CR or LF in it)
        self._after_cr = False  # a chunk ended with CR: a leading LF in the next one is its pair
        self._start = True  # a UTF-8 BOM is dropped from the very start of the stream only

    def feed(self, data: bytes) -> list[str]:
        if not data:  # nothing read: it must not part a CR from its LF either
            return []
        if self._after_cr:
            self._after_cr = False
            if data[0] == 0x0A:
                data = data[1:]
        has_cr = b"\r" in data
        if not self._start and not has_cr and b"\n" not in data:
            self._head.append(data)  # a read inside a long line: no copying of what came before
            return []
        buf = b"".join((*self._head, data)) if self._head else data
        self._head = []
        if self._start:
            if len(buf) < 3 and _BOM.startswith(buf):
                self._head.append(buf)  # could still be the start of a BOM: wait for more
                return []
            self._start = False
            if buf.startswith(_BOM):
                buf = buf[3:]
        parts = _EOL.split(buf) if has_cr else buf.split(b"\n")
        last = parts.pop()
        if last:
            self._head.append(last)
        self._after_cr = has_cr and buf.endswith(b"\r")
        return [p.decode("utf-8", "replace") for p in parts]

    def rest(self) -> str:
        """Text after the last line ending (an unterminated last line)."""
        return b"".join(self._head).decode("utf-8", "replace")


async def aiter_text_lines(chunks: AsyncIterable[bytes], *, include_last: bool = True) -> AsyncIterator[str]:
    """Lines of a UTF-8 byte stream (a leading BOM dropped), without their endings."""
    splitter = LineSplitter()
    async for chunk in chunks:
        for line in splitter.feed(chunk):
            yield line
    if include_last and splitter.rest():
        yield splitter.rest()


class SSEParser:
    """Turns a byte stream (``feed``) or its lines (``feed_line``, without line endings) into events."""

    def __init__(self) -> None:
        self._lines = LineSplitter()
        self._data: list[str] = []
        self._event = ""
        self.last_event_id = ""
        self.retry_ms: int | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events that ``chunk`` (any read, cut anywhere) completes."""
        events = []
        for line in self._lines.feed(chunk):
            event = self.feed_line(line)
            if event is not None:
                events.append(event)
        return events

    def feed_line(self, line: str) -> SSEEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):  # comment / keep-alive (E-3)
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:  # E-5: an event without data is not delivered
            return None
        return SSEEvent(type=event or "message", data="\n".join(data), last_event_id=self.last_event_id)


async def aiter_sse(chunks: AsyncIterable[bytes]) -> AsyncIterator[SSEEvent]:
    """Events from a byte stream. A trailing event without its blank line is discarded (E.1.6)."""
    parser = SSEParser()
    async for chunk in chunks:
        for event in parser.feed(chunk):
            yield event
