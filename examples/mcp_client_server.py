"""Client/server: deterministic automation first, then the model continues from its result.

The SERVER is a running agentsite with an MCP server registered (the time server,
``mcp-server-time``; this example registers it through ``POST /v1/tools/mcp`` unless
``--no-register``). The CLIENT (this script):

1. calls the tool directly, no model involved: ``POST /v1/tools/call``
   ``{"server": "time", "tool": "get_current_time", "arguments": {"timezone": ...}}`` — the
   same answer every time, for automation you want to control;
2. streams ``POST /v1/infer/stream`` with that result already in ``messages`` (replayed as an
   assistant tool call + its ``tool`` result, the shape ``/v1/infer`` itself produces), so the
   model carries on from there instead of calling the tool again. ``time.convert_time`` stays
   available should it need more.

Environment:
  AGENTSITE_URL       default http://127.0.0.1:8080
  AGENTSITE_API_KEY   an API key; registering the MCP server needs a staff user's key
  AGENTSITE_MODEL_ID  a registered model id; or --register-model with AGENTSITE_MODEL_BASE /
                      AGENTSITE_MODEL_PROTOCOL (default ollama) / AGENTSITE_MODEL_NAME
  MCP_TIME_COMMAND    default "<this python> -m mcp_server_time --local-timezone UTC"
                      (runs on the agentsite server's machine)

Example:
  python examples/mcp_client_server.py --timezone Europe/Paris
  python examples/mcp_client_server.py --register-model --script-fake http://127.0.0.1:18901   # dry run, fake model
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _client import STREAM_TIMEOUT, check, client, content_text, model_id, script_fake, stream_run

DEFAULT_TIME = f"{shlex.quote(sys.executable)} -m mcp_server_time --local-timezone UTC"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--timezone", default="Europe/Paris")
    ap.add_argument("--no-register", action="store_true", help="the time server is already registered as 'time'")
    ap.add_argument("--register-model", action="store_true", help="register the model from AGENTSITE_MODEL_* first")
    ap.add_argument("--script-fake", metavar="FAKE_URL", help="script tests/fakes/fake_llm.py's reply (dry run)")
    opts = ap.parse_args()

    with client(STREAM_TIMEOUT, no_key="Set AGENTSITE_API_KEY (manage.py create_api_key <user>).") as http:
        mid = model_id(http, opts.register_model)
        if not opts.no_register:
            argv = shlex.split(os.environ.get("MCP_TIME_COMMAND", DEFAULT_TIME))
            st = check(http.post("/v1/tools/mcp", json={"mcpServers": {"time": {"command": argv[0], "args": argv[1:]}}}))
            print(f"server: MCP server 'time' {st['servers']['time']['status']}")

        # 1. Deterministic: call the tool ourselves, no model in the loop.
        args = {"timezone": opts.timezone}
        res = check(http.post("/v1/tools/call", json={"server": "time", "tool": "get_current_time", "arguments": args}))
        print(f"client: /v1/tools/call {res['tool_id']} {json.dumps(args)} -> is_error={res['is_error']} "
              f"in {res['duration_ms']:.1f} ms")
        print(f"        structured: {json.dumps(res['structured'])}")
        if res["is_error"]:
            sys.exit(f"the tool failed: {content_text(res['content'])}")

        # 2. Hand the result to the model as if it had made the call itself.
        name = check(http.get(f"/v1/tools/{res['tool_id']}"))["name"]  # the model-facing name
        call_id = "call_direct_1"
        messages = [
            {"role": "system", "content": "You are a concise assistant. Use the tool results you are given."},
            {"role": "user", "content": f"What time is it in {opts.timezone}, and what is that in Tokyo?"},
            {"role": "assistant", "content": "",
             "tool_calls": [{"id": call_id, "tool_id": res["tool_id"], "name": name, "arguments": args}]},
            {"role": "tool", "tool_call_id": call_id, "tool_id": res["tool_id"], "content": res["content"],
             "is_error": False},
        ]
        if opts.script_fake:
            now = res["structured"]["datetime"]
            replies = [
                {"tool_calls": [{"name": "time_convert_time", "arguments": {
                    "source_timezone": opts.timezone, "time": now[11:16], "target_timezone": "Asia/Tokyo"}}]},
                {"content": f"In {opts.timezone} it is {now[11:16]} ({now[:10]}); the converted Tokyo time is shown "
                            "in the tool result above.", "chunk_size": 12},
            ]
            script_fake(opts.script_fake, replies)

        body = {"model_id": mid, "tool_ids": ["time.convert_time"], "messages": messages}
        print("client: /v1/infer/stream with the result in the messages …")
        done = stream_run(http, body)
        print(f"done: finish_reason={done['finish_reason']} tool_rounds={done['tool_rounds']}")


if __name__ == "__main__":
    main()
