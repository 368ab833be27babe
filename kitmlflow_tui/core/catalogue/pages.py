"""Paginated MLflow calls, bounded: a server that always answers with a ``next_page_token`` lists forever.

MLflow's client hands the caller one page and the server's token for the next; it never checks that the
token moves on. A lying or broken server (one that sends the same token again, or a new one every time)
kept ``search_logged_models`` looping at 20 requests a second. :func:`all_pages` walks the pages and stops
with exit 6 (the server broke the protocol) on a token it already sent, after ``MAX_PAGES`` pages, or once
the walk has taken ``PAGES_DEADLINE_SECONDS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kitmlflow_tui.core.errors import ServerUnreachableError
from kitmlflow_tui.core.reference import redact_uri

MAX_PAGES = 10_000  # of up to 1,000 experiments or 100 logged models each: far more than any store holds
PAGES_DEADLINE_SECONDS = 900.0  # for one walk, however many pages: 15 minutes of listing is a server gone wrong


def all_pages(
    fetch: Callable[[str | None], Iterable[Any]],
    what: str,
    tracking_uri: str,
    *,
    max_pages: int | None = None,
    deadline_seconds: float | None = None,
) -> Iterator[Any]:
    """Every item of every page ``fetch(token)`` returns (an MLflow ``PagedList`` with ``.token``), first page
    with ``None``. Raises ServerUnreachableError (6) on a repeated token, after ``max_pages`` pages or once
    ``deadline_seconds`` have passed while the server still sends a next token (defaults: ``MAX_PAGES``,
    ``PAGES_DEADLINE_SECONDS``, read at the call)."""
    max_pages = MAX_PAGES if max_pages is None else max_pages
    deadline_seconds = PAGES_DEADLINE_SECONDS if deadline_seconds is None else deadline_seconds
    seen: set[str] = set()
    token: str | None = None
    started = time.monotonic()
    pages = 0
    while True:
        page = fetch(token)
        pages += 1
        yield from page
        token = getattr(page, "token", None) or None
        if token is None:
            return
        server = redact_uri(tracking_uri)
        if token in seen:
            raise ServerUnreachableError(
                f"The tracking server {server} sent a page token it had sent before while listing {what} "
                f"(after {pages:,} pages): it would list forever; refusing it."
            )
        if pages >= max_pages:
            raise ServerUnreachableError(
                f"The tracking server {server} listed {what} in more than {max_pages:,} pages and still sends a "
                "next page token; refusing it."
            )
        if time.monotonic() - started > deadline_seconds:
            raise ServerUnreachableError(
                f"Listing {what} on the tracking server {server} took more than {deadline_seconds:,.0f} s "
                f"({pages:,} pages) and it still sends a next page token; refusing it.",
                hint="A slow server or a very large store: retry later, or ask its administrator.",
            )
        seen.add(token)
