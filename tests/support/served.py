"""What the test servers written for a test share: an HTTP server on a daemon thread, stopped for good at the end."""

from __future__ import annotations

import contextlib
import socketserver
import threading
from collections.abc import Iterator
from typing import Self, TypeVar


class ServedInThread:
    """Set ``stopping``, ``httpd`` and ``_thread`` (running ``httpd.serve_forever``) in ``__init__``."""

    stopping: threading.Event
    httpd: socketserver.BaseServer
    _thread: threading.Thread

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # first: an answer the server holds gives up
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)


Served = TypeVar("Served", bound=ServedInThread)


@contextlib.contextmanager
def serving(server: Served) -> Iterator[Served]:
    """``server`` started, and stopped however the block ends."""
    server.start()
    try:
        yield server
    finally:
        server.stop()
