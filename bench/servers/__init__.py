"""The servers the benchmarks start, each as `uvicorn MODULE:APP` in a process of its own."""
