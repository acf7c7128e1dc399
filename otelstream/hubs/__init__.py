"""Hubs: where the span processor publishes events and where streams subscribe.

The contract (`Hub`, `Subscription`, their errors) is in `_contract.py`; the memory hub is
`otelstream.hubs.memory`, the Redis hub `otelstream.hubs.redis`, and every hub's readers
are served by one fan-out engine (`_feed.py` the run's replay buffer, `_fanout.py` its
readers).
"""

from otelstream.hubs._contract import (
    Hub,
    HubUnavailable,
    RunPage,
    RunPosition,
    SubscriberLagged,
    Subscription,
    UnknownRun,
)
from otelstream.hubs._select import from_url, hub_from_settings

__all__ = [
    "Hub",
    "HubUnavailable",
    "RunPage",
    "RunPosition",
    "SubscriberLagged",
    "Subscription",
    "UnknownRun",
    "from_url",
    "hub_from_settings",
]
