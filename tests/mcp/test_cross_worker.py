"""What a worker does when an MCP server changes through another worker (registry/mcp_services.py):
the bus message drops its connection, the resync repairs what a lost message left behind, an env
change drops the connections opened with the old value, and the admin deletes through the service.
"""

from __future__ import annotations

from typing import Any

import pytest

from core import bus
from inference.engine.mcp import MCPClientManager
from inference.sources import DbTools
from registry import mcp_services
from registry.env_store import env_set
from registry.models import MCPServer
from tests.factories import StaffFactory
from tests.mcp_servers import children
from tests.mcp_servers.fixtures import DEMO_STDIO


@pytest.fixture(autouse=True)
def _own_state(monkeypatch: pytest.MonkeyPatch, settings) -> None:
    settings.REDIS_URL = None  # one process: the bus delivers here, at once
    monkeypatch.setattr(mcp_services, "_configured", {})


def register(name: str, config: dict[str, Any] | None = None) -> int:
    outcome = mcp_services.mcp_register(servers={name: config or DEMO_STDIO})
    assert outcome["servers"][name]["status"] == "connected", outcome
    return MCPClientManager().status(name)["pid"]


def message(name: str, origin: str) -> dict[str, Any]:
    return {"type": mcp_services.MCP_CHANGED, "name": name, "action": "deleted", "origin": origin}


def test_a_change_through_another_worker_drops_the_connection_here(db, mcp: MCPClientManager) -> None:
    pid = register("cw")
    mcp_services._on_mcp_changed(message("cw", bus.WORKER_ID))  # our own: already applied here
    assert pid in children() and "cw" in mcp.servers()
    mcp_services._on_mcp_changed(message("cw", "other-host:1:abcd"))
    assert pid not in children() and "cw" not in mcp.servers()
    # the next use configures it again from the database
    DbTools(StaffFactory()).get_many(["cw.add"])
    assert "cw" in mcp.servers()


def test_the_resync_drops_servers_deleted_or_edited_behind_its_back(db, mcp: MCPClientManager) -> None:
    pids = {name: register(name) for name in ("keep", "gone", "edited")}
    # as if through another worker whose messages never arrived
    MCPServer.objects.filter(name="gone").delete()
    MCPServer.objects.filter(name="edited").update(config={**DEMO_STDIO, "env": {"FLAVOUR": "new"}})
    assert sorted(mcp_services.mcp_reconcile()) == ["edited", "gone"]
    assert pids["keep"] in children() and pids["gone"] not in children() and pids["edited"] not in children()
    assert mcp_services.mcp_reconcile() == []  # nothing left to repair
    assert "keep" in mcp.servers() and "gone" not in mcp.servers()


def test_an_env_change_drops_the_connections_that_use_it(db, mcp: MCPClientManager,
                                                         django_capture_on_commit_callbacks) -> None:
    env_set(key="CW_TOKEN", value="first", is_secret=True)
    uses = register("uses", {**DEMO_STDIO, "env": {"TOKEN": "${CW_TOKEN}"}})
    other = register("other")
    with django_capture_on_commit_callbacks(execute=True):
        env_set(key="CW_TOKEN", value="second", is_secret=True)
    assert uses not in children() and "uses" not in mcp.servers()
    assert other in children()


def test_deleting_in_the_admin_stops_the_server(admin_client, mcp: MCPClientManager) -> None:
    pid = register("adm")
    server = MCPServer.objects.get(name="adm")
    res = admin_client.post(f"/admin/registry/mcpserver/{server.pk}/delete/", {"post": "yes"})
    assert res.status_code == 302 and not MCPServer.objects.exists()
    assert pid not in children() and "adm" not in mcp.servers()
