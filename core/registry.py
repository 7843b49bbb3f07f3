"""A tiny name → object registry filled by a decorator; unknown names list the valid ones."""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from .errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a key to an object; ``register(key)`` is a decorator."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, key: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if key in self._items:
                raise ValueError(f"{self.kind} '{key}' registered twice")
            self._items[key] = obj
            return obj

        return deco

    def register_class(self, key: str, attr: str):
        """Class decorator: register ``cls`` under ``key`` and store the key on it as ``cls.<attr>``."""

        def deco(cls):
            setattr(cls, attr, key)
            return self.register(key)(cls)

        return deco

    def get(self, key: str) -> T:
        try:
            return self._items[key]
        except KeyError:
            raise UserError(f"unknown {self.kind} '{key}'; valid: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
