"""A bounded memory of keys, oldest forgotten first: spans streamed already, hidden spans."""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")


class SeenSpans(Generic[K]):
    """At most `limit` keys (with a value each); past it the oldest goes. Used on one loop."""

    __slots__ = ("items", "limit")

    def __init__(self, limit: int) -> None:
        self.items: dict[K, int | None] = {}
        self.limit = limit

    def add(self, key: K) -> bool:
        """Remember `key`; False when it was known already."""
        if key in self.items:
            return False
        self.put(key, None)
        return True

    def put(self, key: K, value: int | None) -> None:
        items = self.items
        if len(items) >= self.limit:
            del items[next(iter(items))]
        items[key] = value

    def get(self, key: K) -> int | None:
        return self.items.get(key)


__all__ = ["SeenSpans"]
