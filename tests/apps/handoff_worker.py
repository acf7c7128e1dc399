"""The worker process of `handoff_app`: joins the run the carrier names, works for a second,
and (with `True`) dies by SIGKILL in the middle of its task instead of finishing.

    python -m tests.apps.handoff_worker '<carrier JSON>' False
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from otelstream import propagation
from otelstream.hubs.redis import RedisHub
from otelstream.settings import Settings
from otelstream.telemetry import setup_telemetry


def work(carrier: dict[str, str], die: bool) -> None:
    hub = RedisHub(os.environ["OTELSTREAM_HUB"], Settings())
    telemetry = setup_telemetry(hub)
    tracer = telemetry.provider.get_tracer(__name__)
    try:
        with propagation.attached(carrier), tracer.start_as_current_span("task:crunch"):
            for part in (1, 2):
                with tracer.start_as_current_span(f"task:crunch_part_{part}"):
                    time.sleep(0.5)
                    if die:
                        hub.close()  # what it published so far reaches Redis, then it dies
                        os.kill(os.getpid(), signal.SIGKILL)
    finally:
        telemetry.shutdown()
        hub.close()


if __name__ == "__main__":
    work(json.loads(sys.argv[1]), sys.argv[2] == "True")
