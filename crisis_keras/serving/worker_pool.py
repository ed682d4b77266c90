"""A fixed pool of model threads behind a queue of bounded depth.

A request takes one of `workers + queue_depth` places (`reserve`) as soon as
its headers are in, before its body is read, so at most that many bodies are
held at once. With no place free `reserve` raises `Overloaded` at once (the
server answers 503 with Retry-After) instead of letting the queue and the
memory grow. `Reservation.run(fn)` hands `fn` to a worker and waits for its
result: at most `workers` run at a time, the others wait in line.
`drain` refuses new places (`Draining`), waits for the taken ones to be
given back, then stops the threads.
"""

import queue
import threading
from concurrent.futures import Future


class Overloaded(Exception):
    """No place is free: every worker is busy and the queue is full."""


class Draining(Overloaded):
    """The pool is shutting down and takes no new work."""


class Reservation:
    """One taken place; give it back with `release` (or use `with`)."""

    def __init__(self, pool):
        self._pool = pool
        self._held = True

    def run(self, fn):
        """`fn()` on a worker thread; returns its result or raises its exception."""
        future = Future()
        self._pool._jobs.put((fn, future))
        try:
            return future.result()
        finally:
            # An exception's traceback holds this frame: without the del, the cycle
            # future -> exception -> traceback -> frame -> future keeps the request's
            # parsed body alive until a full garbage collection.
            del future

    def release(self):
        if self._held:
            self._held = False
            self._pool._release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


class WorkerPool:
    def __init__(self, workers: int, queue_depth: int):
        self.workers = workers
        self.queue_depth = queue_depth
        self.capacity = workers + queue_depth
        self._jobs = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._taken = 0
        self._draining = False
        self._threads = [threading.Thread(target=self._work, name=f"model-worker-{i}",
                                          daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    @property
    def taken(self) -> int:
        return self._taken

    def reserve(self) -> Reservation:
        with self._cond:
            if self._draining:
                raise Draining("the server is shutting down")
            if self._taken >= self.capacity:
                raise Overloaded(
                    f"the server is busy: {self.workers} worker(s) running and "
                    f"{self.queue_depth} request(s) waiting (--workers, --queue-depth)")
            self._taken += 1
        return Reservation(self)

    def _release(self):
        with self._cond:
            self._taken -= 1
            self._cond.notify_all()

    def _work(self):
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, future = job
            try:
                future.set_result(fn())
            except BaseException as err:  # handed to the waiting request
                future.set_exception(err)
            job = fn = future = None  # hold nothing of a finished request

    def drain(self, timeout: float) -> bool:
        """Refuse new work, wait up to `timeout` s for the taken places; True if all came back."""
        with self._cond:
            self._draining = True
            done = self._cond.wait_for(lambda: self._taken == 0, timeout)
        for _ in self._threads:
            self._jobs.put(None)
        return done
