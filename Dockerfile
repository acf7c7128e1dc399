# The example app (examples/fastapi-telemetry) with otelstream, built from this repository.
# Used by collector/docker-compose.yml; build context is the repository root.
FROM python:3.11.15-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /app
# The package first, so that changing the example does not reinstall its dependencies.
COPY pyproject.toml README.md ./
COPY otelstream ./otelstream
RUN pip install --no-cache-dir ".[example,ingest,redis]" \
    "celery[redis]>=5.4" "opentelemetry-instrumentation-celery>=0.51b0"
COPY examples ./examples

EXPOSE 8000
CMD ["uvicorn", "examples.fastapi-telemetry.main:app", "--host", "0.0.0.0", "--port", "8000"]
