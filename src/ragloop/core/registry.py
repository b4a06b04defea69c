"""Factories by name: the one registry behind embedders and generators.

Built-ins are registered explicitly (each kind's ``default_registry``), third parties through an
entry point group (``ragloop.embedders``, ``ragloop.generators``), tests by ``register``. Names
are case-insensitive. Looking up a name that is neither raises the caller's error class with
every known name in the message, so a typo in a setting is fixed from the message alone.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from typing import Generic, TypeVar

from ragloop.core.errors import ConfigError, RagloopError

T = TypeVar("T")


class Registry(Generic[T]):
    """Factories of one ``kind`` by case-insensitive name, plus those of an entry point group.

    ``special`` names (``auto`` for generators) are resolved by the caller before any lookup;
    they are listed among the known names so an error message offers them too.
    """

    def __init__(self, kind: str, entry_point_group: str, special: Sequence[str] = ()) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self.special = tuple(special)
        self._factories: dict[str, T] = {}

    def register(self, name: str, factory: T) -> None:
        """Register (or replace) ``factory`` under ``name``."""
        self._factories[name.lower()] = factory

    def _entry_points(self) -> list[importlib.metadata.EntryPoint]:
        return list(importlib.metadata.entry_points(group=self.entry_point_group))

    def names(self) -> list[str]:
        """Registered and entry point names, lowercase and sorted (not the ``special`` ones)."""
        return sorted(set(self._factories) | {ep.name.lower() for ep in self._entry_points()})

    def find(self, name: str) -> T | None:
        """The factory registered or published as ``name``, or None; registered ones win."""
        key = name.lower()
        if key in self._factories:
            return self._factories[key]
        for ep in self._entry_points():
            if ep.name.lower() == key:
                factory: T = ep.load()
                return factory
        return None

    def unknown(self, name: str, hint: str = "") -> str:
        """The message for a name nothing answers to: the known names, then ``hint``."""
        known = ", ".join([*self.special, *self.names()]) or "none"
        message = f"unknown {self.kind} {name!r}; known {self.kind}s: {known}"
        return f"{message}; {hint}" if hint else message

    def get(self, name: str, error: type[RagloopError] = ConfigError, hint: str = "") -> T:
        """The factory for ``name``; raises ``error`` listing the known names when there is none.

        ``error`` says whose mistake it is: ``ConfigError`` (or a subclass) for a setting,
        ``InvalidInputError`` for a request.
        """
        factory = self.find(name)
        if factory is None:
            raise error(self.unknown(name, hint))
        return factory
