"""Benchmarks: otelstream measured side by side with the SDK, the original design and the SSE
servers people use. Run `python -m bench` (see README.md)."""
