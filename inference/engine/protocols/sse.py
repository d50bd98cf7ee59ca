"""Server-Sent Events parsing (WHATWG rules, docs/protocols.md E.1) and a strict line splitter.

We split lines ourselves instead of using ``httpx.Response.aiter_lines``: that one follows
``str.splitlines`` and also breaks on U+2028, U+0085 and friends, which may appear unescaped
inside a JSON string. Here only CR, LF and CRLF end a line, even when a chunk ends between
the CR and the LF.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SSEEvent:
    type: str
    data: str
    last_event_id: str = ""


class LineSplitter:
    """Incremental CR / LF / CRLF line splitter over decoded text."""

    def __init__(self) -> None:
        self._buf = ""
        self._after_cr = False  # a chunk ended with CR: a leading LF in the next one is its pair

    def feed(self, text: str) -> list[str]:
        if self._after_cr and text.startswith("\n"):
            text = text[1:]
        self._after_cr = False
        buf = self._buf + text
        lines: list[str] = []
        start = 0
        i = 0
        n = len(buf)
        while i < n:
            ch = buf[i]
            if ch == "\r" or ch == "\n":
                lines.append(buf[start:i])
                if ch == "\r":
                    if i + 1 < n and buf[i + 1] == "\n":
                        i += 1
                    elif i + 1 == n:
                        self._after_cr = True
                start = i + 1
            i += 1
        self._buf = buf[start:]
        return lines

    def rest(self) -> str:
        """Text after the last line ending (an unterminated last line)."""
        return self._buf


async def aiter_text_lines(chunks: AsyncIterable[bytes], *, include_last: bool = True) -> AsyncIterator[str]:
    """Decode UTF-8 bytes (a leading BOM dropped) and yield lines without their endings."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
    splitter = LineSplitter()
    async for chunk in chunks:
        for line in splitter.feed(decoder.decode(chunk)):
            yield line
    for line in splitter.feed(decoder.decode(b"", final=True)):
        yield line
    if include_last and splitter.rest():
        yield splitter.rest()


class SSEParser:
    """Turns lines into events; feed one line at a time (without its line ending)."""

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self.last_event_id = ""
        self.retry_ms: int | None = None

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
    async for line in aiter_text_lines(chunks, include_last=False):
        event = parser.feed_line(line)
        if event is not None:
            yield event
