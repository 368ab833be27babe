"""The registry client's tag listing (``RegistryClient.list_tags``, under ``mlflow deployments list``) against a
registry-shaped stand-in that pages as the distribution spec says (``n``, ``Link: <…>; rel="next"``) and one that
lies: the same page again, a next page on another host. Debian's docker-registry (distribution 2.8) ignores ``n``
and sends every tag at once, so it cannot show paging; tests/live/test_mlflow_deployments.py lists its tags."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from kitmlflow_tui.core.errors import PushError
from kitmlflow_tui.core.registry import RegistryClient

TAGS = [f"v{n}" for n in range(1, 8)]


@pytest.fixture
def stand_in() -> Iterator[tuple[str, list[str], dict[str, str]]]:
    """(host, paths requested, behaviour): ``mode`` is ``paged``, ``repeat`` or ``elsewhere``."""
    seen: list[str] = []
    behaviour = {"mode": "paged"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            seen.append(self.path)
            if self.path == "/v2/":
                return self._answer(200, {}, {})
            query = parse_qs(urlsplit(self.path).query)
            size = int(query.get("n", ["100"])[0])
            last = query.get("last", [""])[0]
            start = TAGS.index(last) + 1 if last else 0
            page = TAGS[start : start + size]
            headers = {}
            if start + size < len(TAGS):
                mode = behaviour["mode"]
                following = {"paged": f"/v2/ml/m/tags/list?n={size}&last={page[-1]}", "repeat": self.path}.get(
                    mode, f"http://127.0.0.2:9/v2/ml/m/tags/list?n={size}&last={page[-1]}"
                )
                headers["Link"] = f'<{following}>; rel="next"'
            self._answer(200, {"name": "ml/m", "tags": page}, headers)

        def _answer(self, status: int, body: dict, headers: dict[str, str]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen, behaviour
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(60)
def test_pages_are_followed_by_their_link_and_the_bound_holds(stand_in) -> None:
    host, seen, _behaviour = stand_in
    with RegistryClient.connect(host) as client:
        listing = client.list_tags("ml/m", page_size=3)
        assert listing.tags == tuple(TAGS) and not listing.truncated
        assert [p for p in seen if "tags/list" in p] == [
            "/v2/ml/m/tags/list?n=3",
            "/v2/ml/m/tags/list?n=3&last=v3",
            "/v2/ml/m/tags/list?n=3&last=v6",
        ]
        bounded = client.list_tags("ml/m", page_size=2, limit=3)
        assert bounded.tags == ("v1", "v2", "v3") and bounded.truncated


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("mode", "words"), [("repeat", "same tag page twice"), ("elsewhere", "another host")])
def test_a_registry_that_repeats_a_page_or_points_elsewhere_is_refused(stand_in, mode: str, words: str) -> None:
    host, seen, behaviour = stand_in
    behaviour["mode"] = mode
    with RegistryClient.connect(host) as client, pytest.raises(PushError) as raised:
        client.list_tags("ml/m", page_size=3)
    assert words in str(raised.value)
    assert len([p for p in seen if "tags/list" in p]) <= 2  # no loop, and nothing sent to the other host
