"""Raw-socket HTTP for the hostile-input tests: requests urllib will not send
(a lying Content-Length, a body a byte at a time, a request left half sent),
and this process's memory from /proc/self/status."""

import http.client
import json
import socket
from urllib.parse import urlsplit


def connect(url, timeout=30):
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    return sock


def post_head(path, length, extra=""):
    """The request line and headers of a POST whose body has `length` bytes."""
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{extra}\r\n").encode("ascii")


def read_response(sock):
    """(status, headers dict with lower-case keys, decoded JSON body or None)."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = response.read()
    headers = {k.lower(): v for k, v in response.getheaders()}
    try:
        payload = json.loads(body) if body else None
    except json.JSONDecodeError:
        payload = {"raw": body.decode("latin-1")}
    return response.status, headers, payload


def send_raw(url, data, timeout=30):
    """Sends `data` as is on a new connection; (status, headers, JSON body)."""
    with connect(url, timeout) as sock:
        sock.sendall(data)
        return read_response(sock)


def proc_status_mb(field):
    """`VmRSS` / `VmHWM` (peak) of this process, in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)
