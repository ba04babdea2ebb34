"""API-key check in Python: same behaviour as api-key-check.ts.

    HTTPMESH_API_KEYS=key1,key2 HTTPMESH_PLUGIN_SOCKET=/run/httpmesh/apikey.sock /usr/bin/python3 api_key_check.py

Needs python3-grpcio and python3-protobuf; finds httpmesh_plugin in packages/plugin-sdk/python
of this repository (or anywhere on PYTHONPATH).
"""

import hmac
import json
import os
import sys

sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packages", "plugin-sdk", "python"))

from httpmesh_plugin import Plugin  # noqa: E402

KEYS = [k.strip() for k in os.environ.get("HTTPMESH_API_KEYS", "").split(",") if k.strip()]


def on_request_headers(ctx):
    key = ctx.header("x-api-key")
    # compare_digest: constant time, so timing does not leak key prefixes.
    if key is not None and any(hmac.compare_digest(key.encode(), k.encode()) for k in KEYS):
        return {"remove": ["x-api-key"]}
    return {
        "respond": {
            "status": 401,
            "headers": {"content-type": "application/json", "www-authenticate": 'ApiKey header="x-api-key"'},
            "body": json.dumps({"error": "missing API key" if key is None else "invalid API key"}),
        }
    }


Plugin("api-key-check", version="1.0.0", on_request_headers=on_request_headers).serve()
