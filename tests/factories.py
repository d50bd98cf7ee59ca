"""Test data factories (factory_boy): users, API keys, models, function tools and MCP servers.

Defaults are the model's own, so a factory call names exactly what a test cares about:

    UserFactory(username="eve")                      # password "eve-pass-123"
    StaffFactory(username="ops")
    LLMModelFactory(model_id="m", fake=fake_llm)     # openai on the fake server, model "fake-model"
    LLMModelFactory(model_id="m", api_protocol="ollama", fake=fake_llm, timeout_s=5)
    ToolFactory(tool_id="math.add", parameters=ADD_PARAMS)   # name "add", callable tests.tool_fns:add
    bearer(user)                                     # {"Authorization": "Bearer ask_..."}, a new key
"""

from __future__ import annotations

from typing import Any

import factory
from django.conf import settings
from django.contrib.auth.models import Permission
from factory.django import DjangoModelFactory

from accounts.models import ApiKey
from accounts.services import api_key_create
from registry.models import LLMModel, MCPServer, Tool
from registry.staff_rights import registry_codenames
from tests.mcp_servers.fixtures import DEMO_STDIO

# Parameter schemas of the callables in tests/tool_fns.py.
ADD_PARAMS = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}
EXPLODE_PARAMS = {"type": "object", "properties": {"reason": {"type": "string"}}}
BLOCK_PARAMS = {"type": "object", "properties": {"seconds": {"type": "number"}}}

# An api_base nothing listens on (port 9, discard).
DEAD_OPENAI_BASE = "http://127.0.0.1:9/v1"


class UserFactory(DjangoModelFactory):
    """A user made by ``create_user`` (hashed password); the password is ``<username>-pass-123``."""

    class Meta:
        model = settings.AUTH_USER_MODEL

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.LazyAttribute(lambda o: f"{o.username}-pass-123")
    is_staff = False

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Any:
        return model_class._default_manager.create_user(*args, **kwargs)


class StaffFactory(UserFactory):
    """A staff user holding every registry permission and ``run_code`` (what staff could do
    before rights came from permissions); ``rights=()`` for none, or a list of
    ``(app label, codename)``."""

    is_staff = True

    class Meta:
        skip_postgeneration_save = True  # permissions are rows of their own: the user needs no save

    @factory.post_generation
    def rights(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        wanted = registry_codenames() if extracted is None else list(extracted)
        perms = [p for p in Permission.objects.select_related("content_type").filter(codename__in=[c for _, c in wanted])
                 if (p.content_type.app_label, p.codename) in wanted]
        self.user_permissions.add(*perms)


def api_key(user: Any, name: str = "test") -> tuple[ApiKey, str]:
    """A new API key for ``user``: the row and its plaintext (shown once, never stored)."""
    return api_key_create(user=user, name=name)


def bearer(user: Any, name: str = "test") -> dict[str, str]:
    """Request headers carrying a new API key of ``user``."""
    return {"Authorization": f"Bearer {api_key(user, name)[1]}"}


class LLMModelFactory(DjangoModelFactory):
    """A model registration. ``fake=<FakeLLMServer>`` points ``api_base`` at the fake server for the
    row's protocol; without it the base is a port nothing listens on."""

    class Meta:
        model = LLMModel

    class Params:
        fake = None

    model_id = factory.Sequence(lambda n: f"model-{n}")
    api_protocol = "openai"
    api_base = factory.LazyAttribute(
        lambda o: DEAD_OPENAI_BASE if o.fake is None else o.fake.openai_base if o.api_protocol == "openai" else o.fake.ollama_base
    )
    model_name = "fake-model"  # the model the fake server knows


class ToolFactory(DjangoModelFactory):
    """A function tool. ``name`` defaults to the last part of ``tool_id`` and ``callable`` to the
    function of that name in tests/tool_fns.py."""

    class Meta:
        model = Tool

    tool_id = factory.Sequence(lambda n: f"tool{n}")
    tool_type = "function"
    name = factory.LazyAttribute(lambda o: o.tool_id.rsplit(".", 1)[-1])
    callable = factory.LazyAttribute(lambda o: f"tests.tool_fns:{o.name}")


class MCPServerFactory(DjangoModelFactory):
    """A registered MCP server row (not connected): the demo server over stdio by default."""

    class Meta:
        model = MCPServer

    name = factory.Sequence(lambda n: f"server{n}")
    config = factory.LazyFunction(lambda: dict(DEMO_STDIO))


def save_fields(row: Any, **fields: Any) -> None:
    """Change a row through ``save()``, as the API and the admin do, so every worker's registry
    cache hears of it (``QuerySet.update`` sends no signal)."""
    for name, value in fields.items():
        setattr(row, name, value)
    row.save()
