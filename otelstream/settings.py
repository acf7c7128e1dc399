"""Every bound and switch of otelstream, read once from `OTELSTREAM_*` variables and passed in."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Defaults suit one service with a few browsers per run; each bound has an eviction rule."""

    model_config = SettingsConfigDict(env_prefix="OTELSTREAM_", frozen=True, extra="ignore")

    replay_events: int = Field(10_000, ge=1)
    """Events kept per run for late and resuming subscribers; the oldest go first."""
    subscriber_max_lag: int = Field(1_000, ge=1)
    """No longer used, accepted so that old set-ups still start: readers are cursors into the
    run's replay buffer, so being behind costs nothing; a reader is cut only when its cursor
    falls out of that buffer or its client stops reading (`send_timeout_seconds`)."""
    max_active_runs: int = Field(1_000, ge=1)
    """Runs streamed at once; a run started beyond it is traced but not streamed."""
    max_finished_runs: int = Field(1_000, ge=0)
    """Finished runs kept for replay and `GET /runs/{id}`; the oldest go first."""
    run_retention_seconds: float = Field(3_600.0, ge=0)
    """How long a finished run is kept at most."""
    max_retained_bytes: int = Field(256 * 1024 * 1024, ge=0)
    """What finished runs keep in memory at most (their events' frames and span trees); the
    oldest finished runs go first."""
    history_runs: int = Field(50, ge=1)
    """Runs a pipeline's history keeps (issue 31): the outcomes of its last runs, and the
    durations of its last successful runs and of their tasks, which say what is usual."""
    history_ttl_seconds: float = Field(30 * 86_400.0, gt=0)
    """How long the Redis hub keeps a pipeline's history after its last run ended: longer
    than the runs' own retention, so what is usual outlives the runs it was learnt from."""
    overdue_factor: float = Field(2.0, ge=1.0)
    """A task (or a run) whose pipeline has a history is overdue once it has run this many
    times its usual p90 and `overdue_margin_seconds` past it: one `task_overdue`
    (`pipeline_overdue`) event says so while it still runs."""
    overdue_margin_seconds: float = Field(1.0, ge=0)
    """The least time past its usual p90 a task runs before it is overdue: a task of a few
    milliseconds is not flagged for a few more."""
    send_timeout_seconds: float = Field(30.0, gt=0)
    """How long a stream's client may take to accept a write (the socket's buffer counts)
    before the stream is cut with a `send_timeout` notice; it may resume."""
    retry_ms: int = Field(1_000, ge=0)
    """The SSE `retry:` sent on each stream's first frame: how soon a browser reconnects."""
    max_open_spans: int = Field(100_000, ge=1)
    """Spans of streamed runs started and not yet ended, across all runs."""
    keepalive_seconds: float = Field(15.0, gt=0)
    """Idle time after which a stream sends an SSE comment, so proxies keep it open."""
    max_workers: int = Field(8, ge=1)
    """Threads that execute pipelines."""
    max_queued_runs: int = Field(64, ge=0)
    """Runs waiting for a free worker; beyond it starting a run is refused (503)."""
    trace_url: str | None = None
    """Link to a run's trace in a tracing UI, with `{trace_id}` in it, such as
    `http://localhost:16686/trace/{trace_id}` for Jaeger; shown by `GET /runs/{id}`."""
    max_string_length: int = Field(4_096, ge=16)
    """Names, error messages and attribute values longer than this are cut (with "…")."""
    redact_errors: bool = False
    """Send only an error's type, never its message: for streams that untrusted people watch."""
    require_run_token: bool = False
    """Reading a run (its stream, its JSON) or cancelling it needs the token `POST /runs` gave."""
    run_token_secret: SecretStr | None = None
    """Signs run tokens; the same on every worker (default: drawn per process)."""
    max_streams: int = Field(10_000, ge=1)
    """Event streams open at once; beyond it a new one is refused with 503."""
    max_body_bytes: int = Field(65_536, ge=64)
    """Request bodies (a run's parameters) larger than this are refused with 413."""
    shutdown_grace_seconds: float = Field(10.0, ge=0)
    """On SIGTERM, how long running pipelines may go on before they are cancelled and every
    open stream is closed with a `server_shutdown` message."""
    hub: str = "memory"
    """Where runs live: `memory` (this process only) or `redis://host:port/db`, shared by
    every worker and process that publishes or streams (needs the `redis` extra)."""
    auto_instrument: bool = True
    """Under `opentelemetry-instrument` with `OTELSTREAM_HUB` set, otelstream adds its span and
    log processors to the providers the distro built (the `opentelemetry_post_instrument` entry
    point); `false` leaves them alone."""
    redis_buffer_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    """Bytes of events waiting to be written to Redis; past it new events are counted as lost
    (their runs' streams end with `events_lost`). A burst of spans outruns the writer (it
    shares the GIL with the pipelines), so this holds bursts: a buffered event keeps its span,
    measured at about 1.8 KB plus its attributes' strings, so 64 MiB hold about 37,000."""
    redis_buffer_events: int | None = Field(None, ge=1)
    """Events waiting to be written to Redis, a bound beside `redis_buffer_bytes` (the bound
    before it; still accepted): none by default."""
    redis_running_ttl_seconds: float = Field(86_400.0, gt=0)
    """A running run's Redis keys expire this long after its last event (a run whose end never
    reached Redis); a finished run's after `run_retention_seconds`."""
    redis_timeout_seconds: float = Field(5.0, gt=0)
    """How long a Redis command (or a connection) may take before the Redis hub calls Redis
    unreachable: requests then answer 503 with `Retry-After`, the writer keeps what it holds."""
    handoff_wait_seconds: float = Field(10.0, ge=0)
    """How long a run's end waits for the work it handed to other processes through
    `otelstream.propagation.inject` (and not waited for itself) to finish, so that its events
    are in the run's stream; past it the run ends and says how many are still out."""
    worker_lease_seconds: float = Field(15.0, gt=0)
    """Redis hub: how long a process that runs pipelines may go without renewing its liveness
    record before another worker ends its running runs as failed (`WorkerLost`). It renews
    every third of it, on the hub's I/O thread; a pause shorter than the lease (a long GC, a
    stopped container) is never taken for a death, nor is a pause of Redis itself, however
    long: time in which Redis heard no worker at all counts against no lease."""
    attribute_allowlist: Annotated[frozenset[str], NoDecode] = frozenset()
    """Span and log attributes copied into events (comma separated); none by default."""
    log_level: str = "INFO"
    """Log records below this level (`DEBUG`, `INFO`, `WARN`, `ERROR`, `FATAL`) are not streamed
    (they are still exported)."""
    max_log_events_per_run: int = Field(10_000, ge=0)
    """`task_log` events streamed per run; past it (or the bytes) records are counted, and one
    `logs_dropped` event with the count comes just before the run's end."""
    max_log_bytes_per_run: int = Field(4_000_000, ge=0)
    """Bytes of log messages streamed per run (each event counts ~200 more)."""
    span_include: Annotated[tuple[str, ...], NoDecode] = ()
    """Only spans whose name matches one of these globs (comma separated; `scope:GLOB` matches
    the instrumentation scope) become tasks; empty: every span."""
    span_exclude: Annotated[tuple[str, ...], NoDecode] = ()
    """Spans matching one of these (same form) never become tasks; their children attach to the
    nearest shown ancestor. Exclude wins over include; the run's root always shows."""

    otlp_ingest: bool = False
    """Serve the OTLP/HTTP receiver (`POST {prefix}/v1/traces` and `/v1/logs`): spans and logs
    of other services, in any language, join the runs whose trace they belong to."""
    otlp_token: SecretStr | None = None
    """The bearer token OTLP exporters must send (`authorization: Bearer …`); without it the
    receiver is open to whoever reaches it (said once at start-up)."""
    otlp_max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    """An OTLP request body larger than this (before or after gzip) is refused with 413."""
    otlp_grpc_endpoint: str | None = None
    """`host:port` (the collector's spelling, e.g. `0.0.0.0:4317`) where the app also serves
    OTLP over gRPC (traces and logs, the same routing, token and bounds as OTLP/HTTP), started
    and stopped with the router's lifespan; unset or empty: no gRPC receiver. Under several
    workers (gunicorn) each binds the port (`SO_REUSEPORT`), and the kernel spreads senders."""
    otlp_grpc_max_message_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    """An OTLP/gRPC message larger than this (sent or unzipped) is refused with
    RESOURCE_EXHAUSTED; 4 MiB, gRPC's own default and the collector's."""
    otlp_grpc_grace_seconds: float = Field(2.0, ge=0)
    """At shutdown, how long calls under way on the gRPC receiver may take to finish."""
    otlp_linger_seconds: float = Field(6.0, ge=0)
    """How long a run's end waits for the spans of services it called (one of its CLIENT or
    PRODUCER spans has no child yet, or the child has not ended): an SDK's batch processor
    sends every 5 s by default. With an OTLP receiver on, for CLIENT and PRODUCER spans; on a
    shared hub (Redis) without one, for PRODUCER spans (messages to workers on the hub)."""

    @field_validator("otlp_grpc_endpoint")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or int(port) > 65535 or "//" in value:
            raise ValueError(f"must be host:port, as 0.0.0.0:4317, not {value!r:.60}")
        return value

    @property
    def otlp_receiving(self) -> bool:
        """Either OTLP receiver is on: runs wait for the spans of the services they call."""
        return self.otlp_ingest or self.otlp_grpc_endpoint is not None

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        from otelstream.events._levels import severity

        severity(value)
        return value.strip().upper()

    @field_validator("span_include", "span_exclude", mode="before")
    @classmethod
    def _globs(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("attribute_allowlist", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value


__all__ = ["Settings"]
