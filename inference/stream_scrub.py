"""A run's events on their way out of the server, the answer's text scrubbed across deltas.

Every SSE event is scrubbed on its own (``sse_format``), but a secret the model streams in two
deltas matches in neither; a ``StreamScrubber`` per channel holds back what could still be the
start of one (docs/security.md, "Secrets never leave").
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

from core.secrets import StreamScrubber
from inference.engine import StreamEvent

CHANNELS = ("thinking", "content")  # a delta's text fields; thinking comes first in a round


@dataclass(frozen=True)
class ScrubbedDelta(StreamEvent):
    """A delta that holds nothing but text the stream scrubber let go: masked already, so
    ``sse_format`` need not scrub it again (once per streamed piece, that was half its cost)."""


def _delta(data: dict[str, str]) -> StreamEvent:
    return ScrubbedDelta("delta", data) if len(data) == 1 else StreamEvent("delta", data)


async def scrubbed_events(events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
    """``events`` with each delta's text let go only once no secret can be cut in it.

    What a channel holds back goes out as a delta of its own before anything else does: before
    a delta of the other channel, a tool call, the message, ``done`` or ``error``; so text and
    events keep their order and a client that joins the deltas gets the stored answer's text.
    Pings pass at once and release nothing.
    """
    held = {channel: StreamScrubber() for channel in CHANNELS}

    def release(but: str | None = None) -> list[StreamEvent]:
        out = []
        for channel, scrubber in held.items():
            rest = scrubber.flush() if channel != but else ""
            if rest:
                out.append(_delta({channel: rest}))
        return out

    try:
        async for event in events:
            if event.event == "ping":
                yield event
                continue
            if event.event != "delta":
                for pending in release():
                    yield pending
                yield event
                continue
            channel = next((c for c in CHANNELS if isinstance(event.data.get(c), str)), None)
            if channel is None:
                yield event
                continue
            for pending in release(but=channel):
                yield pending
            text = held[channel].feed(event.data[channel])
            if text:
                yield _delta({**event.data, channel: text})
        for pending in release():
            yield pending
    finally:
        if isinstance(events, AsyncGenerator):  # a consumer that leaves closes the run's stream at once
            await events.aclose()
