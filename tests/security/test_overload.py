"""Overload: a worker sheds new work with 503 + Retry-After and finishes what it accepted."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from asgiref.sync import sync_to_async

from agentsite.asgi import application
from tests.e2e.conftest import LiveServer, sse_events
from tests.factories import LLMModelFactory, UserFactory, bearer
from tests.fakes.fake_llm import FakeLLMServer, Reply

ANSWER = "word " * 40


def assert_overloaded(res: httpx.Response) -> None:
    assert res.status_code == 503, res.text
    assert res.headers["retry-after"] == "1"
    error = res.json()["error"]
    assert error["code"] == "overloaded" and error["detail"]["retry_after_s"] == 1, error


@pytest.mark.e2e
def test_a_full_worker_refuses_new_work_and_finishes_the_streams_it_accepted(transactional_db,
                                                                             fake_llm: FakeLLMServer) -> None:
    server = LiveServer({"AGENTSITE_MAX_INFLIGHT": "2"})
    try:
        LLMModelFactory(model_id="slow", fake=fake_llm, timeout_s=30)
        headers = bearer(UserFactory(username="busy"))
        fake_llm.script([Reply(content=ANSWER, chunk_size=5, delay_s=0.05)] * 2)
        body = {"model_id": "slow", "text": "talk"}
        with httpx.Client(timeout=30) as one, httpx.Client(timeout=30) as two:
            streams = [c.stream("POST", server.url + "/v1/infer/stream", json=body, headers=headers) for c in (one, two)]
            responses = [s.__enter__() for s in streams]
            try:
                lines = [r.iter_lines() for r in responses]
                for it in lines:
                    assert sse_events(it, count=1)[0][0] == "delta"  # both accepted and streaming

                # a third caller, and any other /v1 request, is refused at once while they run
                assert_overloaded(httpx.post(server.url + "/v1/infer", json=body, headers=headers, timeout=10))
                assert_overloaded(httpx.get(server.url + "/v1/models", headers=headers, timeout=10))
                # no credentials is still a 401 (checked first, for free); health still answers
                assert httpx.get(server.url + "/v1/models", timeout=10).status_code == 401
                assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200

                # the accepted streams go on to the end, whole
                for it in lines:
                    done = sse_events(it, until="done")[-1]
                    assert done[0] == "done" and done[1]["content"] == ANSWER
            finally:
                for s in streams:
                    s.__exit__(None, None, None)
        # room again
        deadline = time.monotonic() + 5
        while (res := httpx.get(server.url + "/v1/models", headers=headers, timeout=10)).status_code == 503:
            assert time.monotonic() < deadline, "still refused after the streams ended"
            time.sleep(0.05)
        assert res.status_code == 200
    finally:
        server.stop()


@pytest.mark.django_db(transaction=True)
async def test_an_event_loop_running_late_sheds_until_it_catches_up(settings) -> None:
    settings.AGENTSITE = {**settings.AGENTSITE, "SHED_LAG_S": 0.2}
    headers = await sync_to_async(lambda: bearer(UserFactory(username="late")))()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://testserver") as client:
        assert (await client.get("/v1/models", headers=headers)).status_code == 200  # the watcher starts
        await asyncio.sleep(0.15)
        time.sleep(0.5)  # something blocks the loop
        await asyncio.sleep(0.02)  # the watcher wakes up about 0.4 s late
        res = await client.get("/v1/models", headers=headers)
        assert_overloaded(res)
        assert "behind" in res.json()["error"]["detail"]["reason"]
        await asyncio.sleep(0.25)  # a tick on time
        assert (await client.get("/v1/models", headers=headers)).status_code == 200
