"""A server that goes away while the user browses reads as the first connect does: the socket's words,
never urllib3's "HTTPConnectionPool(...): Max retries exceeded" wrapping (issue 15, item 9)."""

from __future__ import annotations

import socket

import pytest

from kitmlflow_tui.core.catalogue import Catalogue
from kitmlflow_tui.core.errors import ServerUnreachableError


def test_a_server_gone_after_the_connect_is_the_connect_message_naming_what_was_read(isolated_env) -> None:
    with socket.socket() as listener:  # listening for the connect check, closed before MLflow's requests
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        catalogue = Catalogue(f"http://127.0.0.1:{port}")
    with pytest.raises(ServerUnreachableError) as raised:
        catalogue.search_runs("1")
    error = raised.value
    assert error.exit_code == 6
    assert error.message == (
        f"Cannot connect to the tracking server http://127.0.0.1:{port} (Connection refused)"
        " while reading the runs of experiment 1."
    )
    assert error.hint == "Is the server running on that host and port?"
    for raw in ("HTTPConnectionPool", "Max retries", "urllib3", "NewConnectionError", "Errno"):
        assert raw not in error.message + (error.hint or "")
