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


_streaming: dict[str, tuple[Settings, Hub]] = {}
"""The hub the zero-code entry point streams to, by its URL (`stream_to`)."""


def stream_to(hub: Hub, settings: Settings) -> None:
    """This process's span processors stream to `hub`, built for `settings` (zero-code)."""
    _streaming[settings.hub] = (settings, hub)


def hub_from_settings(settings: Settings | None = None) -> Hub:
    """The hub `OTELSTREAM_HUB` (`Settings.hub`) names, built with these settings.

    Under `opentelemetry-instrument`, the very hub its entry point streams to (when built with
    the same settings): a router on it starts each run on the hub its spans are published to,
    and its receiver's runs wait for the services they call. A second hub on the same Redis
    would be a second writer, and a second memory hub would never hear of the runs."""
    settings = settings or Settings()
    streaming = _streaming.get(settings.hub)
    if streaming is not None and streaming[0] == settings:
        return streaming[1]
    return from_url(settings.hub, settings)


__all__ = ["from_url", "hub_from_settings", "stream_to"]
