"""Stream ``/v1/infer/stream`` over HTTP and reassemble the ``/v1/infer`` JSON from the events.

    AGENTSITE_URL=http://127.0.0.1:8080 AGENTSITE_API_KEY=ask_... \
    AGENTSITE_MODEL_BASE=... AGENTSITE_MODEL_PROTOCOL=ollama AGENTSITE_MODEL_NAME=qwen3:14b \
    .venv/bin/python examples/stream_http.py ["your question"]

Parses Server-Sent Events by hand (``event:``/``data:`` lines, a blank line ends an event,
``:`` lines are keep-alive comments), prints the deltas as they arrive, then checks what the
API promises: the ``content`` (and ``thinking``) deltas received after the last
``tool_result`` concatenate to ``done.content`` (``done.thinking``), and ``done`` is exactly
the JSON ``/v1/infer`` answers. Exits 1 if the reassembly does not match.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _client import client, ensure_model


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """(event name, parsed data) for each event of a text/event-stream."""
    event, data = "message", []
    for line in lines:
        if line == "":
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith(":"):
            continue  # ": ping" keep-alive
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
    if data:
        yield event, json.loads("\n".join(data))


def main() -> int:
    question = sys.argv[1] if len(sys.argv) > 1 else "Write one sentence about streaming."
    with client() as c:
        model_id = ensure_model(c)
        content: list[str] = []
        thinking: list[str] = []
        done: dict[str, Any] | None = None
        with c.stream("POST", "/v1/infer/stream", json={"model_id": model_id, "text": question}) as r:
            if r.status_code != 200:
                r.read()
                print(f"HTTP {r.status_code}: {r.text}")
                return 1
            for event, data in sse_events(r.iter_lines()):
                if event == "delta":
                    if "thinking" in data:
                        thinking.append(data["thinking"])
                    if "content" in data:
                        content.append(data["content"])
                        print(data["content"], end="", flush=True)
                elif event == "tool_result":  # only what follows the last tool result is the answer
                    content, thinking = [], []
                elif event in ("tool_call", "session"):
                    print(f"\n[{event}] {data}", flush=True)
                elif event == "done":
                    done = data
                elif event == "error":
                    print(f"\n[error] {data['error']}")
                    return 1
        print()
    if done is None:
        print("the stream ended without a done event")
        return 1
    ok = "".join(content) == done["content"] and "".join(thinking) == done["thinking"]
    print("\n/v1/infer JSON (the done event):")
    print(json.dumps(done, indent=2, ensure_ascii=False))
    print(f"\nreassembled deltas equal done.content/thinking: {ok} "
          f"({len(content)} content deltas, {len(''.join(content))} chars)")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
