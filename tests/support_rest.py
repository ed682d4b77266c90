"""Client helpers for the REST server tests: one JSON request, base64 payloads."""

import base64
import json
import urllib.error
import urllib.request


def call(url, path, payload=None, raw=None):
    """(HTTP status, decoded JSON body) of a GET (no payload) or POST to `url + path`."""
    data = raw if raw is not None else (None if payload is None else json.dumps(payload).encode())
    request = urllib.request.Request(url + path, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def b64(data):
    """TF Serving's JSON form of binary data: `{"b64": "..."}`."""
    return {"b64": base64.b64encode(data).decode("ascii")}
