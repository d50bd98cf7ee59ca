"""One namespace shared by registries that clients name in the same place.

A client names a model or an agent in the same field (``model`` of ``/openai/v1``), so a model
may not take an agent's name and the other way round. The app that owns a kind of name
registers a claimer here (from its ``AppConfig.ready``); core stays free of app imports.
"""

from __future__ import annotations

from collections.abc import Callable

Claimer = Callable[[str], str | None]  # a name -> what holds it ("agent"), or None

_claimers: list[Claimer] = []


def register_claimer(claimer: Claimer) -> None:
    if claimer not in _claimers:
        _claimers.append(claimer)


def name_holder(name: str) -> str | None:
    """What already holds ``name`` among the registered claimers, or None."""
    for claimer in _claimers:
        holder = claimer(name)
        if holder:
            return holder
    return None
