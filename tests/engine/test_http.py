from __future__ import annotations

import asyncio

import httpx
import pytest

from inference.engine import http


@pytest.fixture(autouse=True)
def mock_transport():
    http.set_transport_factory(lambda base_url: httpx.MockTransport(lambda r: httpx.Response(200, text=base_url)))
    yield
    http.set_transport_factory(None)


async def test_clients_are_pooled_per_base_url_and_timeout() -> None:
    a = http.get_client("http://a.test", 60)
    assert http.get_client("http://a.test", 60.0) is a
    assert http.get_client("http://a.test", 5) is not a
    assert http.get_client("http://b.test", 60) is not a
    assert a.timeout == httpx.Timeout(connect=10, read=60, write=30, pool=10)
    assert (await a.get("/x")).text == "http://a.test"  # the transport hook is used
    await http.aclose_clients()
    assert a.is_closed
    assert http.get_client("http://a.test", 60) is not a


def test_each_event_loop_gets_its_own_client() -> None:
    async def grab() -> httpx.AsyncClient:
        client = http.get_client("http://a.test", 60)
        await http.aclose_clients()
        return client

    assert asyncio.run(grab()) is not asyncio.run(grab())


def test_limits_allow_a_thousand_concurrent_streams() -> None:
    assert http.LIMITS.max_connections is None or http.LIMITS.max_connections >= 1100
