"""What a presigned URL may be read with, and where (issue 20 item 3): the rules themselves, on literal addresses.

The hostile server's tests (tests/live/test_integrity_hostile.py) show them at work end to end; a tracking server
off loopback cannot be started here (test servers bind 127.0.0.1 only), so the loopback rule's other half is pinned
on addresses, which need no network.
"""

from __future__ import annotations

import pytest

from kitmlflow_tui.core.download.transports.presigned import address_refusal, on_loopback, store_headers, url_refusal


@pytest.mark.parametrize(
    ("address", "loopback_allowed", "refused"),
    [
        ("127.0.0.1", False, True),
        ("127.0.0.1", True, False),  # a tracking server on loopback signs URLs of a local store
        ("127.45.6.7", False, True),
        ("::1", False, True),
        ("::1", True, False),
        ("::ffff:127.0.0.1", False, True),  # loopback written as IPv6
        ("169.254.169.254", True, True),  # the cloud metadata service: never, even from a loopback server
        ("::ffff:169.254.169.254", True, True),
        ("fe80::1", True, True),
        ("fe80::1%eth0", True, True),
        ("0.0.0.0", True, True),  # reaches this machine on Linux
        ("0.1.2.3", True, True),
        ("::", True, True),
        ("224.0.0.1", True, True),
        ("52.216.8.1", False, False),  # a public store
        ("10.0.0.5", False, False),  # a private network's store (MinIO): the server may well sign those
        ("2600:1f18::1", False, False),
    ],
)
def test_which_addresses_a_presigned_url_may_reach(address: str, loopback_allowed: bool, refused: bool) -> None:
    assert (address_refusal(address, loopback_allowed=loopback_allowed) is not None) == refused


def test_a_url_is_judged_by_every_address_its_host_resolves_to() -> None:
    assert url_refusal("http://127.0.0.1:9000/bucket/key?X-Amz-Signature=s", loopback_allowed=True) is None
    assert url_refusal("http://localhost:9000/bucket/key", loopback_allowed=False) is not None
    assert url_refusal("http://[::1]:9000/bucket/key", loopback_allowed=False) is not None
    assert url_refusal("http://0.0.0.0:9000/bucket/key", loopback_allowed=True) is not None
    assert url_refusal("http:///no-host", loopback_allowed=True) is not None
    assert url_refusal("http://127.0.0.1:99999/bad-port", loopback_allowed=True) is not None
    assert on_loopback("http://127.0.0.1:5000/api/2.0") and on_loopback("http://localhost:5000")
    assert not on_loopback("http://0.0.0.0:5000")  # not a loopback address, though it reaches this machine
    assert not on_loopback("http://10.0.0.5:5000")


def test_the_store_is_sent_only_a_stores_own_headers() -> None:
    signed = {
        "Authorization": "Bearer token",
        "Cookie": "session=1",
        "Host": "admin.internal",
        "Proxy-Authorization": "Basic eDp5",
        "X-Forwarded-For": "10.0.0.1",
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "X-Amz-Server-Side-Encryption-Customer-Key": "a2V5",
        "x-ms-version": "2021-08-06",
        "x-goog-user-project": "project",
        "x-amz-smuggled": "a\r\nInjected: 1",
    }
    assert store_headers(signed) == {
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "X-Amz-Server-Side-Encryption-Customer-Key": "a2V5",
        "x-ms-version": "2021-08-06",
        "x-goog-user-project": "project",
    }
