"""Conformance plugin (Python): same behaviour as test/fixtures/conformance-plugin.ts."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from httpmesh_plugin import Plugin  # noqa: E402

VERSION = os.environ.get("PLUGIN_VERSION", "1.0.0")
state = {"completions": 0}
lock = threading.Lock()


def on_request_headers(ctx):
    if ctx.path == "/set":
        return {"set": {"x-conf": "set"}}
    if ctx.path == "/append":
        return {"append": [("x-conf", "appended")]}
    if ctx.path == "/remove":
        return {"remove": ["x-drop"]}
    if ctx.path == "/respond":
        return {"respond": {"status": 418, "headers": {"x-conf": "teapot"}, "body": "short and stout"}}
    if ctx.path == "/slow":
        time.sleep(1.0)
        return None
    if ctx.path == "/throw":
        raise RuntimeError("boom")
    if ctx.path == "/bad-reply":
        # A reply that cannot be encoded (status must be a uint32).
        return {"respond": {"status": -1}}
    if ctx.path == "/completions":
        with lock:
            return {"respond": {"status": 200, "body": str(state["completions"])}}
    return {"set": {"x-plugin-lang": "python", "x-plugin-version": VERSION}}


def on_request_body(ctx):
    return {"body": ctx.body.decode().upper()}


def on_request_trailers(ctx):
    return {"set": {"x-trailer": "seen-%s" % (ctx.header("x-checksum") or "none")}}


def on_response_headers(ctx):
    if ctx.status == 500:
        return {"respond": {"status": 502, "body": "upstream hidden"}}
    return {"set": {"x-resp": str(ctx.status)}}


def on_response_body(ctx):
    return {"body": b"[" + ctx.body + b"]"}


def on_response_trailers(ctx):
    return {"remove": ["x-secret"]}


def on_complete(ctx):
    with lock:
        state["completions"] += 1


Plugin(
    "conformance",
    version=VERSION,
    request_body=("buffered", 1024),
    response_body=("streamed", 0),
    on_request_headers=on_request_headers,
    on_request_body=on_request_body,
    on_request_trailers=on_request_trailers,
    on_response_headers=on_response_headers,
    on_response_body=on_response_body,
    on_response_trailers=on_response_trailers,
    on_complete=on_complete,
).serve()
