"""Names for classes: one registry next to each family (layers, losses, optimizers, metrics).

The command line, the scikit-learn estimators, model files and checkpoints read the
registries, so a new class is one class and one line::

    @OPTIMIZERS.register("lion")
    class Lion(Optimizer): ...

A name that is not registered is a ValueError listing the valid names.
"""

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from names to things of one ``kind`` ("optimizer", "loss", ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator: ``@REGISTRY.register("name")`` above a class (or function)."""

        def add(entry: T) -> T:
            if name in self._entries and self._entries[name] is not entry:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = entry
            return entry

        return add

    def unregister(self, name: str) -> None:
        """Forget ``name`` (for tests and plugins that register temporarily)."""
        self._entries.pop(name, None)

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ValueError(
                f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}"
            ) from None

    def name_of(self, entry: object) -> str:
        """The name ``entry`` (a registered thing, or an instance of a registered class) has."""
        for name, registered in self._entries.items():
            if registered is entry or type(entry) is registered:
                return name
        raise TypeError(
            f"{type(entry).__name__} is not a registered {self.kind}; "
            f"registered: {', '.join(self.names())}"
        )

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
