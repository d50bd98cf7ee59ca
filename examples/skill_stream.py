"""A Skill, registered from a directory, disclosed progressively during a streamed run.

1. ``POST /v1/tools/skill {"path": ...}`` registers the skill folder (it holds ``SKILL.md``;
   the path is read by the agentsite SERVER, so it must exist there). Default:
   ``tests/skills/data/internal-comms`` of this checkout. This needs a staff key.
2. ``POST /v1/infer/stream`` with ``tool_ids: ["skill.<name>"]``. What the client sees of
   the disclosure is the model's tool calls:
     * round 1 offers the skill as ONE tool, ``skill_<name>``, with its description only;
       the model calls it (the activation) and gets the full SKILL.md body back;
     * from round 2 on, the skill's own tools are offered too: ``read_<name>_file`` (reads
       files inside the skill folder only) plus the registered tools its ``allowed-tools``
       names; the model reads the guideline file SKILL.md points it to;
     * then it answers, streamed as ``delta`` events.
   The tools offered in each round are not part of the stream; with ``--script-fake`` this
   script reads them back from the fake model server's request log to show them.

Environment:
  AGENTSITE_URL       default http://127.0.0.1:8080
  AGENTSITE_API_KEY   a staff user's API key
  AGENTSITE_MODEL_ID  a registered model id; or --register-model with AGENTSITE_MODEL_BASE /
                      AGENTSITE_MODEL_PROTOCOL (default ollama) / AGENTSITE_MODEL_NAME

Example:
  python examples/skill_stream.py
  python examples/skill_stream.py --path /srv/skills/pdf-report --task "Summarize report.pdf"
  python examples/skill_stream.py --register-model --script-fake http://127.0.0.1:18901   # dry run, fake model
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _client import STREAM_TIMEOUT, check, client, content_text, fake_requests, model_id, script_fake, stream_run

DEFAULT_SKILL = Path(__file__).resolve().parents[1] / "tests" / "skills" / "data" / "internal-comms"


def offered_tools(fake_url: str, since: int) -> list[list[str]]:
    """The tool names each model request carried (fake model server's request log)."""
    rounds = []
    for req in fake_requests(fake_url)[since:]:
        body = req.get("json") or {}
        if "messages" in body:
            rounds.append([t.get("function", {}).get("name") for t in body.get("tools") or []])
    return rounds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--path", default=str(DEFAULT_SKILL), help="skill folder on the agentsite server")
    ap.add_argument("--task", default="Write a short 3P update (Progress, Plans, Problems) for the platform team: "
                                      "we shipped MCP sharing, next is skills upload, and CI is flaky.")
    ap.add_argument("--register-model", action="store_true", help="register the model from AGENTSITE_MODEL_* first")
    ap.add_argument("--script-fake", metavar="FAKE_URL", help="script tests/fakes/fake_llm.py's replies (dry run)")
    opts = ap.parse_args()

    with client(
        STREAM_TIMEOUT, no_key="Set AGENTSITE_API_KEY to a staff user's API key (manage.py create_api_key <user>)."
    ) as http:
        mid = model_id(http, opts.register_model)
        skill = check(http.post("/v1/tools/skill", json={"path": opts.path}))
        name, tool_id = skill["name"], skill["tool_id"]
        print(f"skill {name!r} registered as {tool_id!r} from {skill['path']}")
        for warning in skill.get("warnings") or []:
            print(f"  warning: {warning}")
        print(f"  description (all the model sees in round 1): {skill['description'][:120]}…")

        since = 0
        if opts.script_fake:
            since = len(fake_requests(opts.script_fake))
            activation = check(http.get(f"/v1/tools/{tool_id}"))["name"]  # skill_<name>
            replies = [
                {"tool_calls": [{"name": activation, "arguments": {}}]},
                {"tool_calls": [{"name": f"read_{name}_file", "arguments": {"path": "examples/3p-updates.md"}}]},
                {"content": "**Progress:** shipped MCP sharing.\n**Plans:** skills upload.\n**Problems:** flaky CI.",
                 "chunk_size": 10},
            ]
            script_fake(opts.script_fake, replies)

        print(f"\nuser: {opts.task}\n")
        body = {"model_id": mid, "tool_ids": [tool_id], "text": opts.task}
        steps = 0

        def show_call(data: dict) -> None:  # numbered, with what the call is in the disclosure
            nonlocal steps
            steps += 1
            kind = "activation" if data["tool_id"] == tool_id else "skill tool" if data["tool_id"].startswith(
                f"{tool_id}.") else "tool"
            print(f"[{steps}] {kind:<10} → {data['name']}({json.dumps(data['arguments'])})")

        def show_result(data: dict) -> None:
            flag = " ERROR" if data.get("is_error") else ""
            print(f"    result{flag} ← {content_text(data['content'], 240)}")

        done = stream_run(http, body, on_tool_call=show_call, on_tool_result=show_result)
        print(f"\ndone: finish_reason={done['finish_reason']} tool_rounds={done['tool_rounds']}")

        if opts.script_fake:
            print("\ntools offered to the model, per round (from the fake server's request log):")
            for i, names in enumerate(offered_tools(opts.script_fake, since), 1):
                print(f"  round {i}: {names}")


if __name__ == "__main__":
    main()
