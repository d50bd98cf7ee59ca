"""MCP servers as tools, over either model protocol (Ollama native or OpenAI-compatible).

What it does, against a running agentsite:

1. registers two stdio MCP servers through ``POST /v1/tools/mcp`` (staff key): the time server
   (``mcp-server-time``) and the fetch server (``mcp-server-fetch``, PyPI). agentsite starts
   each ONCE per worker and shares it between every request; the commands run on the
   agentsite server's machine, not here;
2. asks the model a question that needs both, through ``POST /v1/infer`` — or, with
   ``--stream``, through ``POST /v1/infer/stream``, printing deltas, tool calls and tool
   results as they arrive.

``mcp-server-fetch`` installs beside ``mcp`` 2.x (checked with mcp 2.3.0 and
mcp-server-fetch 2026.10.24) but is not one of agentsite's dependencies: install it where the
server runs (``.venv/bin/pip install mcp-server-fetch``) or point ``MCP_FETCH_COMMAND`` at
an interpreter that has it. If the fetch server can't be registered (not installed), the
example says so and uses agentsite's built-in ``fetch`` tool instead. To fetch pages on
127.0.0.1, ``mcp-server-fetch`` needs ``--allow-private-ips`` (and ``--ignore-robots-txt``
when the local server has no robots.txt); the built-in ``fetch`` needs
``AGENTSITE_FETCH_ALLOW_HOSTS=127.0.0.1`` in the server's environment.

Environment:
  AGENTSITE_URL       default http://127.0.0.1:8080
  AGENTSITE_API_KEY   a staff user's API key (registration needs staff)
  AGENTSITE_MODEL_ID  a registered model id; or --register-model with
                      AGENTSITE_MODEL_BASE / AGENTSITE_MODEL_NAME (the protocol is --protocol,
                      default AGENTSITE_MODEL_PROTOCOL or "ollama")
  MCP_TIME_COMMAND    default "<this python> -m mcp_server_time --local-timezone UTC"
  MCP_FETCH_COMMAND   default "<this python> -m mcp_server_fetch"

Examples:
  python examples/mcp_tools.py --protocol ollama
  python examples/mcp_tools.py --protocol openai --stream --url https://example.com
  # a dry run against the fake model server (tests/fakes/fake_llm.py, process mode):
  python examples/mcp_tools.py --register-model --protocol openai --stream --script-fake http://127.0.0.1:18901
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _client import (
    STREAM_TIMEOUT,
    check,
    client,
    content_text,
    model_id,
    print_tool_call,
    script_fake,
    stream_run,
)

DEFAULT_TIME = f"{shlex.quote(sys.executable)} -m mcp_server_time --local-timezone UTC"
DEFAULT_FETCH = f"{shlex.quote(sys.executable)} -m mcp_server_fetch"


def register_mcp(http: httpx.Client, servers: dict[str, str]) -> dict[str, dict]:
    """POST /v1/tools/mcp with {"mcpServers": {name: {"command", "args"}}}; per-server status."""
    config = {}
    for name, command in servers.items():
        argv = shlex.split(command)
        config[name] = {"command": argv[0], "args": argv[1:]}
    answer = check(http.post("/v1/tools/mcp", json={"mcpServers": config}))["servers"]
    for name, st in answer.items():
        if st["status"] == "connected":
            print(f"MCP server {name!r}: connected, tools {st['tool_ids']}")
        else:
            print(f"MCP server {name!r}: {st['status']}: {st.get('error', {}).get('message', '')[:300]}")
    return answer


def run(http: httpx.Client, body: dict, stream: bool) -> dict:
    if stream:
        return stream_run(http, body, thinking=True)
    out = check(http.post("/v1/infer", json=body))
    for m in out["messages"]:
        for call in m.get("tool_calls") or []:
            print_tool_call(call)
        if m.get("role") == "tool":
            flag = " ERROR" if m.get("is_error") else ""
            print(f"← tool result [{m['tool_id']}]{flag}: {content_text(m['content'], 300)}")
    print(f"\nassistant: {out['content']}")
    return out


def fake_replies(names: dict[str, str], page: str) -> list[dict]:
    """The replies a capable model would give here, for the fake model server (tests/fakes/fake_llm.py)."""
    return [
        {"tool_calls": [{"name": names["time"], "arguments": {"timezone": "UTC"}}]},
        {"tool_calls": [{"name": names["fetch"], "arguments": {"url": page}}]},
        {"content": "It is the time shown above (UTC), and I fetched the page for you.", "chunk_size": 8},
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocol", choices=["ollama", "openai"], help="the model protocol (used with --register-model)")
    ap.add_argument("--register-model", action="store_true", help="register the model from AGENTSITE_MODEL_* first")
    ap.add_argument("--stream", action="store_true", help="use /v1/infer/stream and print events as they come")
    ap.add_argument("--url", default="https://example.com", help="the page the model is asked to fetch")
    ap.add_argument("--question", help="override the question")
    ap.add_argument("--script-fake", metavar="FAKE_URL", help="script tests/fakes/fake_llm.py's replies (dry run)")
    opts = ap.parse_args()

    with client(
        STREAM_TIMEOUT, no_key="Set AGENTSITE_API_KEY to a staff user's API key (manage.py create_api_key <user>)."
    ) as http:
        mid = model_id(http, opts.register_model, opts.protocol, verbose=True)
        time_cmd = os.environ.get("MCP_TIME_COMMAND", DEFAULT_TIME)
        fetch_cmd = os.environ.get("MCP_FETCH_COMMAND", DEFAULT_FETCH)
        status = register_mcp(http, {"time": time_cmd, "fetch": fetch_cmd})
        if status["time"]["status"] != "connected":
            sys.exit("the time server did not connect; set MCP_TIME_COMMAND to a command that runs mcp-server-time")
        tool_ids = ["time.get_current_time"]
        if status["fetch"]["status"] == "connected":
            tool_ids.append("fetch.fetch")
        else:
            print("mcp-server-fetch is not available on the server: using the built-in 'fetch' tool instead")
            check(http.delete("/v1/tools/mcp/fetch"))  # don't leave a broken server registered
            tool_ids.append("fetch")
        # The names the model sees (e.g. time_get_current_time, fetch_fetch) come from the tools.
        names = {tid.split(".")[0]: check(http.get(f"/v1/tools/{tid}"))["name"] for tid in tool_ids}
        print(f"tools offered: {', '.join(f'{n} ({t})' for n, t in zip(names.values(), tool_ids, strict=True))}")

        if opts.script_fake:
            script_fake(opts.script_fake, fake_replies(names, opts.url))
        question = opts.question or (
            f"What time is it now in UTC? Then fetch {opts.url} and tell me in one sentence what the page is about."
        )
        print(f"\nuser: {question}\n")
        out = run(http, {"model_id": mid, "tool_ids": tool_ids, "text": question}, opts.stream)
        print(f"\nfinish_reason={out['finish_reason']} tool_rounds={out['tool_rounds']} usage={out['usage']}")


if __name__ == "__main__":
    main()
