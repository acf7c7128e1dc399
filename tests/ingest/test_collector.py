"""collector/: the compose file and the collector config, checked offline.

No Docker engine runs here, so nothing is started: the compose file is
validated against the Compose spec, and the collector config, the compose
ports and the Dockerfile are checked against each other. The exporters
themselves are tested against a real OTLP receiver in test_otlp_export.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from otelstream import Settings
from tests.conftest import ROOT

COLLECTOR = ROOT / "collector"
COMPOSE = COLLECTOR / "docker-compose.yml"
CHECK_JSONSCHEMA = [sys.executable, "-m", "check_jsonschema"]
PINNED = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?$")


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(COMPOSE)


@pytest.fixture(scope="module")
def config(compose: dict[str, Any]) -> dict[str, Any]:
    (mount,) = compose["services"]["collector"]["volumes"]
    source, target, _ = mount.split(":")
    assert compose["services"]["collector"]["command"] == [f"--config={target}"]
    return load(COLLECTOR / source)


def test_the_compose_file_follows_the_compose_spec() -> None:
    done = subprocess.run(
        [*CHECK_JSONSCHEMA, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_images_are_pinned_to_versions(compose: dict[str, Any]) -> None:
    images = {name: s["image"] for name, s in compose["services"].items() if "image" in s}
    assert sorted(images) == ["collector", "jaeger", "redis"]
    assert all(PINNED.match(image) for image in images.values()), images
    assert images["collector"].startswith("otel/opentelemetry-collector-contrib:")
    assert images["jaeger"].startswith("jaegertracing/jaeger:")
    base = re.search(r"^FROM (\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert base is not None and PINNED.match(base.group(1).replace("-slim", ""))


def test_the_zero_code_worker_shares_the_apps_redis_and_is_built_from_its_example(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    app, worker = services["app"]["environment"], services["worker"]
    for name in ("OTELSTREAM_HUB", "CELERY_BROKER", "OTEL_PROPAGATORS"):
        assert worker["environment"][name] == app[name], name
    assert urlsplit(app["OTELSTREAM_HUB"]).hostname == "redis"
    assert "otelstream_run" in app["OTEL_PROPAGATORS"].split(",")
    dockerfile = (COLLECTOR / worker["build"]["context"] / worker["build"]["dockerfile"]).resolve()
    assert dockerfile == ROOT / "examples" / "celery-worker" / "Dockerfile"
    text = dockerfile.read_text()
    for line in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for source in line.split():
            assert (ROOT / source).exists(), source
    assert '"opentelemetry-instrument", "celery", "-A", "tasks"' in text  # no otelstream code


def test_every_pipeline_uses_only_defined_components(config: dict[str, Any]) -> None:
    pipelines = config["service"]["pipelines"]
    assert list(pipelines) == ["traces", "logs", "metrics"]
    for pipeline in pipelines.values():
        for kind in ("receivers", "processors", "exporters"):
            assert set(pipeline[kind]) <= set(config[kind]), (kind, pipeline[kind])
    traces = pipelines["traces"]
    assert traces == {
        "receivers": ["otlp"],
        "processors": ["batch"],
        "exporters": ["otlp/jaeger", "otlp/otelstream", "debug"],
    }
    assert pipelines["logs"]["exporters"] == ["otlp/otelstream", "debug"]
    # otelstream's run metrics: the collector's log; otelstream's receiver takes no metrics
    assert pipelines["metrics"]["exporters"] == ["debug"]
    used = {name for p in pipelines.values() for kind in p.values() for name in kind}
    defined = {name for kind in ("receivers", "processors", "exporters") for name in config[kind]}
    assert defined == used  # nothing defined and left out


def published(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port"""
    pairs = (str(port).split(":") for port in service.get("ports", []))
    return {int(container): int(host) for host, container in pairs}


def test_the_ports_of_the_collector_and_the_compose_file_match(
    compose: dict[str, Any], config: dict[str, Any]
) -> None:
    services = compose["services"]
    protocols = config["receivers"]["otlp"]["protocols"]
    receiving = {name: int(p["endpoint"].rsplit(":", 1)[1]) for name, p in protocols.items()}
    assert receiving == {"grpc": 4317, "http": 4318}
    assert published(services["collector"]) == {4317: 4317, 4318: 4318}

    # the collector sends to Jaeger's OTLP gRPC receiver, in plain text inside the network
    jaeger = config["exporters"]["otlp/jaeger"]
    assert (jaeger["endpoint"], jaeger["tls"]) == ("jaeger:4317", {"insecure": True})
    assert published(services["jaeger"]) == {16686: 16686}
    assert config["exporters"]["debug"] == {"verbosity": "basic"}

    # the app exports to the collector's gRPC receiver, and links runs to Jaeger's UI
    app = services["app"]["environment"]
    endpoint = urlsplit(app["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert (endpoint.hostname, endpoint.port) == ("collector", receiving["grpc"])
    assert app["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
    assert app["OTELSTREAM_TRACE_URL"] == "http://localhost:16686/trace/{trace_id}"
    assert published(services["app"]) == {8000: 8000}

    # the collector sends every service's spans on to the app's OTLP/gRPC receiver, which the
    # app serves on the port the exporter names (plain text inside the network)
    otelstream = config["exporters"]["otlp/otelstream"]
    assert (otelstream["endpoint"], otelstream["tls"]) == ("app:4317", {"insecure": True})
    listening = Settings(otlp_grpc_endpoint=app["OTELSTREAM_OTLP_GRPC_ENDPOINT"])
    assert listening.otlp_receiving and listening.otlp_grpc_endpoint == "0.0.0.0:4317"
    assert app["OTELSTREAM_OTLP_INGEST"] == "true"  # and OTLP/HTTP, for senders without gRPC

    # the Node service exports to the collector's HTTP receiver; the app calls it
    pricing = services["pricing"]
    endpoint = urlsplit(pricing["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert (endpoint.hostname, endpoint.port) == ("collector", receiving["http"])
    assert urlsplit(app["PRICING_URL"]).hostname == "pricing"
    assert (COLLECTOR / pricing["build"]["context"] / "Dockerfile").is_file()


def test_the_app_image_is_built_from_this_repository(compose: dict[str, Any]) -> None:
    build = compose["services"]["app"]["build"]
    context = (COLLECTOR / build["context"]).resolve()
    assert context == ROOT
    dockerfile = (context / build["dockerfile"]).read_text()
    for line in re.findall(r"^COPY (.+) \S+$", dockerfile, re.M):
        for source in line.split():
            assert (context / source).exists(), source
    command = re.search(r"^CMD (.+)$", dockerfile, re.M)
    assert command is not None
    module = command.group(1).split('"')[3].split(":")[0]  # the app uvicorn serves
    assert (context / (module.replace(".", "/") + ".py")).is_file()
    assert '"--port", "8000"' in command.group(1)
