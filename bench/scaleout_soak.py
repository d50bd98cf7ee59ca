"""Scale-out soak: two Daphne workers on PostgreSQL + Redis for ten minutes, every kind of change
made through one worker and checked on the other, in both directions, at random intervals.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/scaleout_soak.py [--minutes 10] [--seed 20] [--no-redis-restart]

The workers run on a database of their own (created next to the one DATABASE_URL names, dropped
at the end) and the shared Redis. Changes, each followed by the check on the other worker:
env values, model edits, prompt-template edits, key revocations, cancels of a stream held by the
other worker (and the session free again afterwards), MCP servers registered, used, edited and
deleted (the other worker's child process stops). Once about a third of the way in Redis is
stopped for 10 s with changes made meanwhile (its listener must catch up), and about two thirds
in worker A is killed and started again. Prints, per kind of change, how many, the median and
the worst propagation delay (from the change's answer to its effect on the other worker), the
listeners' figures, and every check that failed. The issue's bar: every change within 1 s
(within a few seconds of Redis coming back), no session left locked, no MCP process left over.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import traceback
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WITHIN_S = 1.0


def soak_database(base_url: str) -> tuple[str, Callable[[], None]]:
    """A fresh database next to ``base_url``'s; returns its URL and a function dropping it."""
    import psycopg

    name = f"agentsite_soak_{os.getpid()}"
    parsed = urlparse(base_url)
    admin_url = urlunparse(parsed._replace(scheme="postgresql"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunparse(parsed._replace(path="/" + name)), drop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--gap", type=float, nargs=2, default=(1.0, 15.0), metavar=("MIN", "MAX"),
                        help="idle seconds between two changes (uniform)")
    parser.add_argument("--no-redis-restart", action="store_true")
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL")
    base_db = os.environ.get("DATABASE_URL", "")
    if not redis_url or not base_db.startswith("postgres"):
        print("needs DATABASE_URL=postgres://… and REDIS_URL", file=sys.stderr)
        return 2

    db_url, drop_db = soak_database(base_db)
    os.environ["DATABASE_URL"] = db_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentsite.settings")
    os.environ["AGENTSITE_MEMORY_EXTRACTION"] = "0"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--no-input", verbosity=0)

    import httpx

    from tests.e2e.scaleout import (
        SLOW,
        Cluster,
        Stream,
        bus,
        cancel_through,
        listeners_up,
        mcp_children,
        mcp_config,
        pid_alive,
        redis_down,
        redis_start,
        redis_unrestartable,
        wait_until,
    )
    from tests.factories import StaffFactory, UserFactory, api_key, bearer
    from tests.fakes.fake_llm import FakeLLMServer, Reply

    rng = random.Random(args.seed)
    fake = FakeLLMServer().start()
    cluster = Cluster(("a", "b"))
    delays: dict[str, list[float]] = defaultdict(list)
    failures: list[str] = []
    events: list[str] = []
    try:
        staff = bearer(StaffFactory(username="soak"))
        user = UserFactory(username="soak-user")
        model = {"model_id": "soak", "api_protocol": "openai", "api_base": fake.openai_base, "model_name": "m0",
                 "api_key": "${SOAK_TOKEN}"}
        httpx.post(cluster["a"].url + "/v1/models", json=model, headers=staff).raise_for_status()
        httpx.post(cluster["a"].url + "/v1/prompt-templates", json={"name": "soak", "content": "v0 {{x}}"},
                   headers=staff).raise_for_status()
        counter = iter(range(1, 1_000_000))

        def infer(worker) -> None:
            res = httpx.post(worker.url + "/v1/infer", json={"model_id": "soak", "text": "hi"}, headers=staff, timeout=30)
            assert res.status_code == 200, res.text

        def env(src, dst) -> float:
            value = f"tok-{next(counter)}"
            httpx.post(src.url + "/v1/env", json={"key": "SOAK_TOKEN", "value": value}, headers=staff).raise_for_status()
            t = time.monotonic()
            fake.script("ok")
            infer(dst)
            assert fake.last_request().headers["authorization"] == f"Bearer {value}"
            return time.monotonic() - t

        def model_edit(src, dst) -> float:
            name = f"m{next(counter)}"
            httpx.patch(src.url + "/v1/models/soak", json={"model_name": name}, headers=staff).raise_for_status()
            t = time.monotonic()
            fake.script("ok")
            infer(dst)
            assert fake.last_request().json["model"] == name
            return time.monotonic() - t

        def template(src, dst) -> float:
            text = f"v{next(counter)} {{{{x}}}}"
            httpx.patch(src.url + "/v1/prompt-templates/soak", json={"content": text}, headers=staff).raise_for_status()
            t = time.monotonic()
            res = httpx.post(dst.url + "/v1/prompt-templates/soak/render", json={"arguments": {"x": "y"}}, headers=staff)
            assert res.json()["content"] == text.replace("{{x}}", "y"), res.text
            return time.monotonic() - t

        def revoke(src, dst) -> float:
            row, key = api_key(user)
            headers = {"Authorization": f"Bearer {key}"}
            assert httpx.get(dst.url + "/v1/models", headers=headers).status_code == 200
            assert httpx.delete(f"{src.url}/v1/me/api-keys/{row.pk}", headers=headers).status_code == 204
            t = time.monotonic()
            assert httpx.get(src.url + "/v1/models", headers=headers).status_code == 401
            while httpx.get(dst.url + "/v1/models", headers=headers).status_code != 401:  # the bus: milliseconds
                assert time.monotonic() - t < 5, "dst still takes the revoked key"
                time.sleep(0.005)
            return time.monotonic() - t

        def cancel(src, dst) -> float:
            fake.script(Reply(content=SLOW * 600, chunk_size=len(SLOW), delay_s=0.05))
            stream = Stream(dst, staff, "soak")
            time.sleep(rng.uniform(0, 1.0))
            delay = cancel_through(src, stream, staff)
            # the session is free again, on both workers
            fake.script("again")
            res = httpx.post(src.url + "/v1/infer", json={"model_id": "soak", "session_id": stream.session_id, "text": "more"},
                             headers=staff, timeout=30)
            assert res.status_code == 200, f"session left busy: {res.status_code} {res.text}"
            return delay

        def mcp(src, dst) -> float:
            name = f"soak{next(counter)}"
            res = httpx.post(src.url + "/v1/tools/mcp", json={"mcpServers": {name: mcp_config(name)}}, headers=staff, timeout=30)
            assert res.json()["servers"][name]["status"] == "connected", res.text
            call = {"tool_id": f"{name}.add", "arguments": {"a": 1, "b": 2}}
            res = httpx.post(dst.url + "/v1/tools/call", json=call, headers=staff, timeout=30)
            assert res.json()["structured"] == {"result": 3}, res.text
            if rng.random() < 0.5:
                old = mcp_children(dst)[name]
                res = httpx.post(src.url + "/v1/tools/mcp", json={"mcpServers": {name: mcp_config(name + "-v2")}},
                                 headers=staff, timeout=30)
                assert res.json()["servers"][name]["status"] == "connected", res.text
                delays["mcp edit"].append(wait_until(lambda: not pid_alive(old), 10, "the edited server's old child to stop"))
                httpx.post(dst.url + "/v1/tools/call", json=call, headers=staff, timeout=30).raise_for_status()
            assert httpx.delete(f"{src.url}/v1/tools/mcp/{name}", headers=staff, timeout=30).status_code == 204
            took = wait_until(lambda: not mcp_children(dst), 10, "the deleted server's child to stop")
            assert not mcp_children(src), "a child left on the worker the server was deleted through"
            return took

        kinds: dict[str, Callable] = {"env": env, "model": model_edit, "template": template, "revoke": revoke,
                                      "cancel": cancel, "mcp delete": mcp}
        can_restart_redis = not args.no_redis_restart and not redis_unrestartable(redis_url)
        started = time.monotonic()
        total = args.minutes * 60
        redis_at, worker_at = total / 3, 2 * total / 3
        while time.monotonic() - started < total:
            elapsed = time.monotonic() - started
            if can_restart_redis and elapsed >= redis_at:
                redis_at = float("inf")
                events.append(f"{elapsed:.0f} s: Redis stopped for 10 s")
                fake.script(Reply(content=SLOW * 800, chunk_size=len(SLOW), delay_s=0.05))
                stream = Stream(cluster["b"], staff, "soak")
                with redis_down(redis_url):
                    httpx.post(f"{cluster['a'].url}/v1/sessions/{stream.session_id}/cancel", headers=staff).raise_for_status()
                    httpx.post(cluster["a"].url + "/v1/env", json={"key": "SOAK_TOKEN", "value": "outage"},
                               headers=staff).raise_for_status()
                    time.sleep(10)
                up = time.monotonic()
                try:
                    end = stream.wait_end(30)
                    assert end[1].get("finish_reason") == "cancelled", end
                    delays["after Redis: cancel"].append(stream.ended_at - up)  # type: ignore[operator]
                    delays["after Redis: listeners up"].append(
                        wait_until(lambda: listeners_up(cluster["a"], cluster["b"]), 30, "listeners"))
                except AssertionError as exc:
                    failures.append(f"after Redis restart: {exc}")
                continue
            if elapsed >= worker_at:
                worker_at = float("inf")
                events.append(f"{elapsed:.0f} s: worker A killed and started again")
                cluster.kill("a")
                cluster.restart("a")
                try:
                    delays["restarted worker: listener up"].append(wait_until(lambda: listeners_up(cluster["a"]), 30, "A"))
                except AssertionError as exc:
                    failures.append(f"after A's restart: {exc}")
                continue
            time.sleep(rng.uniform(*args.gap))
            kind = rng.choice(list(kinds))
            src, dst = (cluster["a"], cluster["b"]) if rng.random() < 0.5 else (cluster["b"], cluster["a"])
            direction = "a->b" if src is cluster["a"] else "b->a"
            try:
                delays[kind].append(kinds[kind](src, dst))
                delays[f"({direction})"].append(delays[kind][-1])
            except Exception as exc:  # noqa: BLE001 - a soak reports every failure and goes on
                failures.append(f"{time.monotonic() - started:.0f} s {kind} {direction}: {exc!r}")
                traceback.print_exc()

        figures = {name: bus(w) for name, w in cluster.workers.items()}
        leftovers = {name: mcp_children(w) for name, w in cluster.workers.items()}
    finally:
        cluster.stop()
        fake.stop()
        if not redis_unrestartable(redis_url):
            redis_start(redis_url)
        from django.db import connections

        connections.close_all()
        drop_db()

    print(f"\nscale-out soak: {args.minutes:g} min, seed {args.seed}, idle gaps {args.gap[0]:g}-{args.gap[1]:g} s")
    for event in events:
        print("  " + event)
    print("\n| change | n | median s | worst s |\n|---|---|---|---|")
    for kind, values in sorted(delays.items()):
        print(f"| {kind} | {len(values)} | {statistics.median(values):.3f} | {max(values):.3f} |")
    regular = [v for k, vs in delays.items() if not k.startswith(("after", "restarted", "(")) for v in vs]
    print(f"\nworst propagation delay (regular changes): {max(regular):.3f} s over {len(regular)} changes")
    for name, f in figures.items():
        print(f"worker {name}: listener {f['listener']}, reconnects {f['reconnects']}, received {f['received']}, "
              f"sent {f['sent']}, lag last/max {f['lag_ms']}/{f['max_lag_ms']} ms, outbox {f['outbox']}, resyncs {f['resyncs']}")
    print(f"MCP children left: {leftovers}")
    slow = [f"{k}: {v:.3f}" for k, vs in delays.items() if not k.startswith(("after", "restarted")) for v in vs if v >= WITHIN_S]
    print(f"changes slower than {WITHIN_S:g} s: {len(slow)} {slow[:10]}")
    print(f"failures: {len(failures)}")
    for failure in failures:
        print("  " + failure)
    return 1 if failures or any(leftovers.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
