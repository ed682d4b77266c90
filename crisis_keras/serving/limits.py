"""The server's limits: what one request may cost, and how much work may wait.

Every limit is enforced before the allocation it protects: `max_body_bytes`
against Content-Length before the body is read, `read_timeout` while it is
read, `max_instances` on the parsed JSON before any value is converted,
`max_pixels` / `max_request_pixels` on the images' headers before any pixel
is decoded (`image_limits`), `max_text_chars` per text. `workers` threads run
the model; at most `queue_depth` more requests wait for one, and a request
beyond that is answered 503 with Retry-After (`worker_pool`).

Defaults: a tweet's photo as Twitter stores it is at most 4096 x 4096
(16.8 megapixels); CrisisMMD's are about 0.5. Decoding and the antialiased
resize cost about 15 bytes a pixel (uint8 RGB, then float32), so one request
at the request budget needs about 1 GB at most.
"""

import argparse
import dataclasses

MIB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 32 * MIB
    max_instances: int = 256
    max_pixels: int = 4096 * 4096
    max_request_pixels: int = 4 * 4096 * 4096
    max_text_chars: int = 10_000
    read_timeout: float = 30.0
    workers: int = 2
    queue_depth: int = 8
    max_connections: int = 64
    retry_after: int = 1
    drain_timeout: float = 30.0

    def __post_init__(self):
        for field in dataclasses.fields(self):
            if getattr(self, field.name) <= 0 and field.name != "queue_depth":
                raise ValueError(f"--{field.name.replace('_', '-')} must be positive, "
                                 f"got {getattr(self, field.name)}.")
        if self.queue_depth < 0:
            raise ValueError(f"--queue-depth must be >= 0, got {self.queue_depth}.")


_HELP = {
    "max_body_bytes": "largest request body; larger gets 413 before it is read",
    "max_instances": "most rows a request; more gets 413 before any is decoded",
    "max_pixels": "most pixels an image may declare (width x height, read from its "
                  "header before decoding); more gets 413",
    "max_request_pixels": "most pixels the images of one request may declare in all",
    "max_text_chars": "longest text, in characters; longer gets 413",
    "read_timeout": "seconds to receive a request's headers and body (and an idle "
                    "keep-alive connection's next request); slower gets 408",
    "workers": "threads running the model",
    "queue_depth": "requests that may wait for a worker; more get 503 with Retry-After",
    "max_connections": "open connections; more get 503 at once",
    "retry_after": "seconds in the Retry-After header of a 503",
    "drain_timeout": "on SIGTERM, seconds to let in-flight requests finish",
}


def add_limit_flags(parser: argparse.ArgumentParser) -> None:
    """`--max-body-bytes`, ..., one flag per `Limits` field, with its default."""
    group = parser.add_argument_group("limits")
    for field in dataclasses.fields(Limits):
        group.add_argument(f"--{field.name.replace('_', '-')}", type=field.type,
                           default=field.default,
                           help=f"{_HELP[field.name]} (default: {field.default}).")


def limits_from_args(args: argparse.Namespace) -> Limits:
    return Limits(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Limits)})
