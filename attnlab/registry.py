"""Name -> implementation registries with helpful errors.

Every pluggable piece of attnlab (attention scores, positional encodings, models, datasets, ...)
is looked up by name in a :class:`Registry`, so that an unknown name fails with the list of valid
ones instead of a ``KeyError``.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from attnlab.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from names to objects, filled with the :meth:`register` decorator.

    >>> colours = Registry[str]("colour")
    >>> _ = colours.register("red")("#f00")
    >>> colours.get("red")
    '#f00'
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UserError(
                f"unknown {self.kind} '{name}'; valid choices: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
