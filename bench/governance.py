"""What governance costs per run: the access check, the quota check and the usage write (issue 13).

In-process, on a throwaway SQLite data directory, against the fake model server: N stateless
one-round runs through the server's run lifecycle (``run_begin`` → ``Runtime.ainfer`` → the end
hook), each done twice, interleaved so drift hits both sides alike:

* **on**: as served — the model and a tool resolved through ``registry.access`` for a user in a
  group (the model and the tool are restricted to it), ``quota_check`` in ``run_begin`` and the
  run's ``UsageHooks`` writing its record once the round's answer is complete;
* **off**: the same run with the access filters replaced by pass-throughs, the quota check by a
  no-op and plain ``RunHooks``.

Added = p50(on) - p50(off). Target: <= 0.3 ms p50 per run. The two parts are also timed alone
(the check without any quota row, and the end hook handing one record to be written behind the
run, as the inference hot path does).

    .venv/bin/python bench/governance.py [-n 400] [--warmup 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from unittest.mock import patch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._harness import FakeServer, ms, p50, p95, print_table

TARGET_MS = 0.3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="agentsite-bench-gov-"))
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    os.environ.update({"AGENTSITE_DATA_DIR": str(workdir), "DJANGO_SETTINGS_MODULE": "agentsite.settings",
                       "LOG_LEVEL": "WARNING"})
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    fake = FakeServer().start(workdir)
    try:
        print_table(["part", "p50 ms", "p95 ms"], measure(fake, args.n, args.warmup))
    finally:
        fake.stop()


def measure(fake: FakeServer, n: int, warmup: int) -> list[list[object]]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from core.db import db_async, pooled
    from inference import lifecycle
    from inference.engine import RunHooks
    from inference.metering import UsageHooks, caller_for
    from registry import cache
    from registry.models import LLMModel, Tool
    from usage import behind
    from usage.services import model_call, quota_check

    user = get_user_model().objects.create_user("bench")
    group = Group.objects.create(name="bench")
    user.groups.add(group)
    model = LLMModel.objects.create(model_id="fake", api_protocol="openai", api_base=fake.openai_base, model_name="m")
    tool = Tool.objects.create(tool_id="adder", name="adder", callable="tests.tool_fns:add",
                               parameters={"type": "object", "properties": {"a": {"type": "integer"}}})
    model.allowed_groups.add(group)
    tool.allowed_groups.add(group)
    data = {"model_id": "fake", "tool_ids": ["adder"], "text": "Say ok."}

    def skip_check(*, user: object) -> None:
        return None

    def admits_everyone(self: object, user: object, gates: object) -> bool:
        return True

    def switched_off(stack: ExitStack) -> None:
        stack.enter_context(patch.object(lifecycle, "quota_check", skip_check))
        stack.enter_context(patch.object(cache.Snapshot, "admits", admits_everyone))

    async def one(metered: bool) -> float:
        with ExitStack() as stack:  # the switch
            if not metered:
                switched_off(stack)
            started = time.perf_counter()
            run = await db_async(lifecycle.run_begin)(user=user, data=data)
            hooks = run.hooks if metered else RunHooks()
            await run.runtime.ainfer(run.prepared, hooks=hooks)
            took = time.perf_counter() - started
        # The record written behind the run is not the run's time, but must not spill into the
        # next run's either: wait for it here, untimed (its own cost is printed below).
        await asyncio.to_thread(behind.settled)
        return took

    async def runs() -> tuple[list[float], list[float]]:
        pooled.set(True)  # as served (agentsite/hotpath.py): ORM work in the shared pool
        on, off = [], []
        for i in range(warmup + n):
            a, b = (await one(True), await one(False)) if i % 2 else tuple(reversed((await one(False), await one(True))))
            if i >= warmup:
                on.append(a)
                off.append(b)
        return on, off

    async def flushes() -> tuple[list[float], list[float]]:
        pooled.set(True)
        caller = caller_for(user)
        handed, written = [], []
        for _ in range(n):
            hooks = UsageHooks(caller=caller)
            hooks.calls.append(model_call(kind="chat", model_id="fake", prompt_tokens=10, completion_tokens=2))
            started = time.perf_counter()
            await hooks.on_end()
            handed.append(time.perf_counter() - started)
            await asyncio.to_thread(behind.settled)
            written.append(time.perf_counter() - started)
        return handed, written

    on, off = asyncio.run(runs())
    checks = []
    for _ in range(n):
        started = time.perf_counter()
        quota_check(user=user)
        checks.append(time.perf_counter() - started)
    writes, inserts = asyncio.run(flushes())
    from registry import selectors

    resolve: dict[bool, list[float]] = {True: [], False: []}
    for i in range(n):  # the model and the tool as a run resolves them, with and without the check
        for checked in (i % 2 == 0, i % 2 == 1):
            with ExitStack() as stack:
                if not checked:
                    switched_off(stack)
                started = time.perf_counter()
                selectors.model_config_get(model_id="fake", user=user)
                selectors.tool_configs_get(tool_ids=["adder"], user=user)
                resolve[checked].append(time.perf_counter() - started)
    added = ms(p50(on) - p50(off))
    verdict = "ok" if added <= TARGET_MS else f"OVER the {TARGET_MS} ms target"
    return [
        ["run, governance on", ms(p50(on)), ms(p95(on))],
        ["run, governance off", ms(p50(off)), ms(p95(off))],
        [f"added per run ({verdict})", added, ms(p95(on) - p95(off))],
        ["model + tool resolved, access on", ms(p50(resolve[True])), ms(p95(resolve[True]))],
        ["model + tool resolved, access off", ms(p50(resolve[False])), ms(p95(resolve[False]))],
        ["quota check alone (no quota)", ms(p50(checks)), ms(p95(checks))],
        ["usage write, the run's part (1 record handed over)", ms(p50(writes)), ms(p95(writes))],
        ["usage write, the INSERT behind the run (not in the run)", ms(p50(inserts)), ms(p95(inserts))],
    ]


if __name__ == "__main__":
    main()
