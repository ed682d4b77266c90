"""Load on the REST server: throughput, latency, status codes and peak memory.

Exports a tiny untrained run (tests/support_runs.py), starts
`python -m crisis_keras.serving.rest_server` on 127.0.0.1 as a subprocess,
and sends `--requests` requests from `--clients` concurrent clients (kept-
alive connections): 70% valid batch-1, 20% valid batch-32, 10% hostile
(decompression bombs, a truncated JPEG, a zero-byte image, 100,000-character /
non-UTF-8 / empty text, JSON nested 10,000 deep, 100,000 instances, wrong
types, duplicate keys, a body above the limit, a client sending a byte every
0.5 s), in a seeded random order. Prints throughput, latency p50/p95/p99 for
batch-1 and batch-32, the count of each status code (and any hostile request
that did not get its expected code), and the server's peak RSS (VmHWM), then
stops the server with SIGTERM and reports its exit code.

    python bench/serve_load.py [--clients 8] [--requests 2000] [--workers 2]

Not run by CI; about a minute on 2 cores.
"""

import argparse
import base64
import collections
import http.client
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

READ_TIMEOUT = 2.0
MAX_BODY = 4 * 1024 * 1024
PREDICT = "/v1/models/crisis:predict"


def _b64(data):
    return {"b64": base64.b64encode(data).decode("ascii")}


def _json(obj):
    return json.dumps(obj).encode("utf-8")


def request_bodies():
    """{kind: (body bytes or a marker, expected status)}, valid kinds first."""
    from support_hostile import bombs, truncated_jpeg
    from support_runs import encode_image

    image = encode_image(1)
    row = {"text": "bridge collapsed after the flood", "image_bytes": _b64(image)}
    batch = [{"text": f"post {i}: roads under water", "image_bytes": _b64(encode_image(i))}
             for i in range(32)]

    def one(**fields):
        return _json({"instances": [dict(row, **fields)]})

    kinds = {"batch_1": (one(), 200), "batch_32": (_json({"instances": batch}), 200)}
    kinds.update({f"bomb_{fmt}": (one(image_bytes=_b64(data)), 413)
                  for fmt, data in bombs().items()})
    image_json = json.dumps(_b64(image)).encode()
    kinds.update({
        "truncated_jpeg": (one(image_bytes=_b64(truncated_jpeg())), 400),
        "zero_byte_image": (one(image_bytes={"b64": ""}), 400),
        "text_100k": (one(text="a" * 100_000), 413),
        "text_not_utf8": (b'{"instances": [{"text": "caf\xe9", "image_bytes": '
                          + image_json + b"}]}", 400),
        "empty_text": (one(text=""), 400),
        "nested_10000": (b'{"instances": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", 400),
        "instances_100000": (_json({"instances": [{"text": "a"}] * 100_000}), 413),
        "wrong_types": (_json({"instances": [{"text": 5, "image_bytes": 7}]}), 400),
        "signature_name_list": (_json({"signature_name": [], "instances": [row]}), 400),
        "duplicate_keys": (b'{"instances": [{"text": "a", "text": "b", "image_bytes": '
                           + image_json + b"}]}", 400),
        "body_over_limit": (b" " * (MAX_BODY + 1), 413),
        "slow_client": ("slow", 408),
    })
    return kinds


class Client:
    """One kept-alive connection; reconnects after the server closes it."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def post(self, body):
        if body == "slow":
            return self._slow()
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self.conn.request("POST", PREDICT, body,
                                  {"Content-Type": "application/json"})
                response = self.conn.getresponse()
                response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                return response.status
            except (ConnectionError, http.client.HTTPException, OSError):
                self.close()
                if attempt:
                    return "connection error"
        return "connection error"

    def _slow(self):
        head = (f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
                ).encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(head)
            for _ in range(20):
                sock.sendall(b" ")
                if select.select([sock], [], [], 0.5)[0]:
                    break
            response = http.client.HTTPResponse(sock)
            response.begin()
            response.read()
            return response.status

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def make_export(folder: Path) -> Path:
    from support_runs import write_untrained_run

    from crisis_keras import export

    write_untrained_run(folder / "run")
    export.export_run(folder / "run", folder / "export", token_ids=False)
    return folder / "export"


def start_server(export_dir, workers, queue_depth):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [sys.executable, "-m", "crisis_keras.serving.rest_server", "--model", str(export_dir),
         "--port", "0", "--workers", str(workers), "--queue-depth", str(queue_depth),
         "--read-timeout", str(READ_TIMEOUT), "--max-body-bytes", str(MAX_BODY)],
        stdout=subprocess.PIPE, text=True, env=env)
    line = process.stdout.readline()
    port = int(line.split("127.0.0.1:")[1].split("/")[0])
    deadline = time.monotonic() + 120
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/v1/models/crisis")
            state = json.loads(conn.getresponse().read())["model_version_status"][0]["state"]
            conn.close()
            if state == "AVAILABLE":
                return process, port
        except OSError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError("the server did not become AVAILABLE")
        time.sleep(0.2)


def proc_status_mb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--queue-depth", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="serve_load_") as tmp:
        export_dir = make_export(Path(tmp))
        kinds = request_bodies()
        hostile = [k for k in kinds if k not in ("batch_1", "batch_32")]
        rng = random.Random(args.seed)
        plan = []
        for _ in range(args.requests):
            draw = rng.random()
            plan.append("batch_1" if draw < 0.7 else "batch_32" if draw < 0.9
                        else rng.choice(hostile))
        process, port = start_server(export_dir, args.workers, args.queue_depth)
        rss_ready = proc_status_mb(process.pid, "VmRSS")
        print(f"server pid {process.pid} AVAILABLE on port {port}, RSS {rss_ready:.0f} MB "
              f"(setup {time.monotonic() - started:.0f} s)", flush=True)

        jobs = collections.deque(enumerate(plan))
        lock = threading.Lock()
        results = []  # (kind, status, seconds)

        def run_client():
            client = Client(port)
            while True:
                with lock:
                    if not jobs:
                        break
                    _, kind = jobs.popleft()
                body = kinds[kind][0]
                t0 = time.perf_counter()
                status = client.post(body)
                elapsed = time.perf_counter() - t0
                with lock:
                    results.append((kind, status, elapsed))
            client.close()

        load_start = time.perf_counter()
        threads = [threading.Thread(target=run_client) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - load_start
        peak = proc_status_mb(process.pid, "VmHWM")
        rss_end = proc_status_mb(process.pid, "VmRSS")
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)

    statuses = collections.Counter(str(s) for _, s, _ in results)
    rows = sum(32 if k == "batch_32" else 1 for k, s, _ in results
               if k.startswith("batch") and s == 200)
    print(f"\n{len(results)} requests from {args.clients} clients in {wall:.1f} s: "
          f"{len(results) / wall:.1f} requests/s, {rows / wall:.1f} classified rows/s "
          f"(server: --workers {args.workers} --queue-depth {args.queue_depth})")
    print(f"{'kind':<10} {'n':>5} {'ok':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for kind in ("batch_1", "batch_32"):
        times = [t * 1000 for k, s, t in results if k == kind and s == 200]
        n = sum(1 for k, _, _ in results if k == kind)
        if times:
            print(f"{kind:<10} {n:>5} {len(times):>5} {percentile(times, 50):>8.1f} "
                  f"{percentile(times, 95):>8.1f} {percentile(times, 99):>8.1f}")
    hostile_times = [t * 1000 for k, _, t in results if k not in ("batch_1", "batch_32")]
    print(f"hostile    {len(hostile_times):>5}       {percentile(hostile_times, 50):>8.1f} "
          f"{percentile(hostile_times, 95):>8.1f} {percentile(hostile_times, 99):>8.1f}")
    print("status codes: " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
    wrong = collections.Counter((k, s) for k, s, _ in results
                                if k in hostile and s != kinds[k][1])
    print("hostile requests answered as expected: "
          + ("all" if not wrong else ", ".join(f"{k} got {s} x{n}" for (k, s), n in
                                                wrong.items())))
    valid_other = collections.Counter(s for k, s, _ in results
                                      if k.startswith("batch") and s != 200)
    if valid_other:
        print("valid requests not answered 200: "
              + ", ".join(f"{s}: {n}" for s, n in valid_other.items()))
    print(f"server RSS: {rss_ready:.0f} MB when ready, {rss_end:.0f} MB at the end, "
          f"peak (VmHWM) {peak:.0f} MB")
    print(f"SIGTERM: exit code {code}; total {time.monotonic() - started:.0f} s")
    return 0 if code == 0 and not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
