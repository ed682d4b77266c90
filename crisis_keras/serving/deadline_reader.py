"""Socket reads with one deadline for a whole request, not one timeout per read.

A socket timeout bounds each `recv`, so a client sending a byte a second
never trips it. `DeadlineReader` sets the socket's timeout to the time left
before `deadline` (a `time.monotonic()` value) on every read and raises
`TimeoutError` once it has passed; wrapped in `io.BufferedReader` it is the
request handler's `rfile`. `timed_out` and `received` tell the handler what
happened (a 408 for a request cut short, a silent close for an idle one).
"""

import io
import time


class DeadlineReader(io.RawIOBase):
    def __init__(self, sock):
        super().__init__()
        self.sock = sock
        self.deadline = None
        self.timed_out = False
        self.received = 0

    def start(self, seconds: float):
        """A new deadline `seconds` from now; resets `timed_out` and `received`."""
        self.deadline = time.monotonic() + seconds
        self.timed_out = False
        self.received = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                self.timed_out = True
                raise TimeoutError("the read deadline has passed")
            self.sock.settimeout(remaining)
        try:
            count = self.sock.recv_into(buffer)
        except TimeoutError:
            self.timed_out = True
            raise
        self.received += count
        return count
