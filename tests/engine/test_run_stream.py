"""A run's events on their way to the consumer: order, pings while the model is silent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx

from inference.engine import InferenceRequest, ModelConfig, ModelRegistry, Runtime
from inference.engine.types import StreamEvent
from tests.engine.upstream import Server

MODEL = ModelConfig(model_id="m", api_protocol="openai", api_base="http://llm.test/v1", model_name="m")


def paced(words: list[str], gaps: list[float]) -> httpx.Response:
    """An SSE answer of one content delta per word, ``gaps[i]`` seconds before word ``i``."""

    async def body() -> AsyncIterator[bytes]:
        for word, gap in zip(words, gaps, strict=True):
            await asyncio.sleep(gap)
            yield f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': word}}]})}\n\n".encode()
        yield b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'

    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())


async def events(server: Server, words: list[str], gaps: list[float], ping_s: float) -> list[StreamEvent]:
    server.handler = lambda request: paced(words, gaps)
    runtime = Runtime(ModelRegistry([MODEL]))
    return [e async for e in runtime.astream(InferenceRequest.of("m", "hi"), ping_s=ping_s)]


async def test_a_model_silent_for_several_ping_intervals_gets_pings_between_its_deltas(server: Server) -> None:
    got = await events(server, ["a", "b"], [0, 0.5], ping_s=0.1)
    names = [e.event for e in got]
    first, second = names.index("delta"), len(names) - 1 - names[::-1].index("delta")
    assert names[first + 1 : second].count("ping") >= 2
    assert "".join(e.data.get("content", "") for e in got if e.event == "delta") == "ab"
    assert names[-1] == "done" and "ping" not in names[second:]


async def test_deltas_closer_together_than_ping_s_get_no_ping_however_long_the_stream(server: Server) -> None:
    # 20 deltas 0.03 s apart: the stream lasts two ping intervals, no single wait lasts one.
    got = await events(server, [f"w{i} " for i in range(20)], [0.03] * 20, ping_s=0.3)
    assert [e.event for e in got].count("ping") == 0
    assert got[-1].event == "done" and got[-1].data["content"] == "".join(f"w{i} " for i in range(20))


async def test_a_consumer_slower_than_the_model_gets_every_event_in_order(server: Server) -> None:
    server.handler = lambda request: paced([f"w{i} " for i in range(30)], [0] * 30)
    stream = Runtime(ModelRegistry([MODEL])).astream(InferenceRequest.of("m", "hi"), ping_s=0.05)
    got = []
    async for event in stream:
        got.append(event)
        await asyncio.sleep(0.01)  # the run goes on meanwhile: its events wait for us
    deltas = [e.data["content"] for e in got if e.event == "delta"]
    assert deltas == [f"w{i} " for i in range(30)] and [e.event for e in got][-2:] == ["message", "done"]
