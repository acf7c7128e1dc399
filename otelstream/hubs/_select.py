"""Choosing a hub by URL or by `OTELSTREAM_HUB`: the one place that knows every hub."""

from __future__ import annotations

from typing import TYPE_CHECKING

from otelstream.settings import Settings

if TYPE_CHECKING:
    from otelstream.hubs._contract import Hub


def from_url(url: str = "memory", settings: Settings | None = None) -> Hub:
    """The hub a URL names: `memory` (this process), `redis://host:port/db` (many processes)
    or `redis+cluster://host:port` (many processes on a Redis Cluster, one seed node)."""
    if url == "memory":
        from otelstream.hubs.memory import MemoryHub

        return MemoryHub(settings)
    if url.startswith(("redis://", "rediss://", "unix://", "redis+cluster://")):
        try:
            from otelstream.hubs.redis import RedisHub
        except ImportError as exc:
            raise ImportError(f"hub {url!r} needs the `redis` extra of otelstream") from exc
        return RedisHub(url, settings)
    raise ValueError(
        f"unknown hub {url!r}: use memory, redis://host:port/db or redis+cluster://host:port"
    )


def hub_from_settings(settings: Settings | None = None) -> Hub:
    """The hub `OTELSTREAM_HUB` (`Settings.hub`) names, built with these settings."""
    settings = settings or Settings()
    return from_url(settings.hub, settings)


__all__ = ["from_url", "hub_from_settings"]
