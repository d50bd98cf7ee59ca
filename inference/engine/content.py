"""Content lists of input messages: the item shapes each role may hold, checked before anything
goes upstream (``Runtime.prepare`` → ``validate_inputs``).

A message's ``content`` is a string or a list of items in MCP's shapes. What the adapters send:

* ``user``: ``{"type": "text", "text"}`` and ``{"type": "image", "data"}`` (base64 or a data
  URI); an image item is an image like those in ``images``: the model must take images, and
  the size limit applies.
* ``system`` and ``assistant``: text items only (the adapters send their text).
* ``tool`` (replayed tool results): MCP's ``text``, ``image``, ``audio``, ``resource`` and
  ``resource_link`` items; an item of another type reaches the model as its JSON text.

Anything else in a user, system or assistant message would be dropped on the way (OpenAI's
``image_url`` parts among them), so it is refused with a hint instead of being lost silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import UnsupportedInput, ValidationFailed
from .types import Message

ROLE_ITEMS: dict[str, tuple[str, ...]] = {"user": ("text", "image"), "system": ("text",), "assistant": ("text",)}
TOOL_ITEMS = ("text", "image", "audio", "resource", "resource_link")  # MCP's; other types pass as JSON text

# The string fields each item type needs; ``resource`` needs an object whose text/uri are strings.
_STRING_FIELDS = {"text": ("text",), "image": ("data",), "audio": ("data",), "resource_link": ("uri",)}

NOT_AN_OBJECT = "a content item must be an object"
NO_TYPE = "a content item needs a string type"
NOT_A_STRING = "must be a string"
NOT_A_RESOURCE = "must be an object whose text and uri are strings"
NOT_FOR_ROLE = "{path}: {role} messages take {allowed} content items, not {kind!r}"
HINTS = {
    "image_url": ' (send images as {"type": "image", "data": "<base64 or data: URI>"} items, or in "images")',
    "input_audio": ' (send audio in "audio")',
    "audio": ' (send audio in "audio")',
}


def _invalid(path: str, problem: str) -> ValidationFailed:
    return ValidationFailed(f"{path}: {problem}", detail={path: [problem]})


def _check_item(path: str, item: Any, role: str) -> None:
    if not isinstance(item, Mapping):
        raise _invalid(path, NOT_AN_OBJECT)
    kind = item.get("type")
    if not isinstance(kind, str):
        raise _invalid(f"{path}.type", NO_TYPE)
    allowed = ROLE_ITEMS.get(role)
    if allowed is not None and kind not in allowed:
        message = NOT_FOR_ROLE.format(path=path, role=role, allowed=" and ".join(allowed), kind=kind) + HINTS.get(kind, "")
        raise UnsupportedInput(message, detail={path: [message]})
    for name in _STRING_FIELDS.get(kind, ()):
        if not isinstance(item.get(name), str):
            raise _invalid(f"{path}.{name}", NOT_A_STRING)
    if kind == "resource":
        resource = item.get("resource")
        if not (isinstance(resource, Mapping) and all(isinstance(resource.get(k, ""), str) for k in ("text", "uri"))):
            raise _invalid(f"{path}.resource", NOT_A_RESOURCE)


def content_images(index: int, message: Message) -> list[str]:
    """The images inside message ``index``'s content list, once every item's shape is checked."""
    if isinstance(message.content, str):
        return []
    images = []
    for j, item in enumerate(message.content):
        path = f"messages[{index}].content[{j}]"
        _check_item(path, item, message.role)
        if item["type"] == "image":
            images.append(item["data"])
    return images
