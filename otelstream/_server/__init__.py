"""The server side of the runs API: endpoints, route table, streams, shutdown and the page.

Private: `otelstream.fastapi.create_router` is its public face.
"""
