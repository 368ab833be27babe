"""Go's tar header encoding as ``archive/tar`` writes it for kit: USTAR when it fits, else PAX records."""

from __future__ import annotations

import os

BLOCK = 512
_USTAR_MAX_SIZE = 8**11  # the 12-byte octal size field


def _put_string(block: bytearray, offset: int, width: int, value: bytes) -> None:
    chunk = value[:width]
    block[offset : offset + len(chunk)] = chunk
    if len(value) < width:
        block[offset + len(value)] = 0
    elif len(value) > width and chunk.endswith(b"/"):
        # Go never leaves a truncated name ending in "/" (a reader could take it for a folder).
        keep = len(value[: width - 1].rstrip(b"/"))
        block[offset + keep] = 0


def _put_octal(block: bytearray, offset: int, width: int, value: int) -> None:
    if value < 0 or value >= 8 ** (width - 1):
        value = 0  # Go writes 0 when the number does not fit (a PAX record carries it)
    _put_string(block, offset, width, format(value, "o").rjust(width - 1, "0").encode())


def _finish(block: bytearray) -> bytes:
    block[257:263] = b"ustar\x00"
    block[263:265] = b"00"
    block[148:156] = b"        "
    checksum = sum(block)
    _put_octal(block, 148, 7, checksum)
    block[155] = 0x20
    return bytes(block)


def _main_header(name: bytes, mode: int, size: int, typeflag: bytes, prefix: bytes = b"") -> bytes:
    block = bytearray(BLOCK)
    block[156:157] = typeflag
    _put_string(block, 0, 100, name)
    _put_octal(block, 100, 8, mode)
    _put_octal(block, 108, 8, 1000)
    _put_octal(block, 116, 8, 0)
    _put_octal(block, 124, 12, size)
    _put_octal(block, 136, 12, 0)
    _put_octal(block, 329, 8, 0)
    _put_octal(block, 337, 8, 0)
    if prefix:
        _put_string(block, 345, 155, prefix)
    return _finish(block)


def _split_ustar(name: bytes) -> tuple[bytes, bytes] | None:
    length = len(name)
    if length <= 100 or not name.isascii():
        return None
    if length > 156:
        length = 156
    elif name[length - 1 : length] == b"/":
        length -= 1
    cut = name.rfind(b"/", 0, length)
    suffix_length = len(name) - cut - 1
    if cut <= 0 or suffix_length > 100 or suffix_length == 0 or cut > 155:
        return None
    return name[:cut], name[cut + 1 :]


def _pax_record(key: str, value: bytes) -> bytes:
    body = f" {key}=".encode() + value + b"\n"
    size = len(body) + len(str(len(body)))
    if len(str(size)) + len(body) != size:
        size = len(str(size)) + len(body)
    return str(size).encode() + body


def tar_header(name: str, mode: int, size: int, is_dir: bool) -> bytes:
    """The header block(s) Go's ``tar.Writer.WriteHeader`` writes for kit's sanitised header."""
    raw_name = os.fsencode(name)
    typeflag = b"5" if is_dir else b"0"
    records: dict[str, bytes] = {}
    ustar_ok = True
    if not raw_name.isascii() or len(raw_name) > 100:
        records["path"] = raw_name
        if _split_ustar(raw_name) is None:
            ustar_ok = False
    if size >= _USTAR_MAX_SIZE:
        records["size"] = str(size).encode()
        ustar_ok = False
    if ustar_ok:
        split = _split_ustar(raw_name)
        if split is not None:
            return _main_header(split[1], mode, size, typeflag, prefix=split[0])
        return _main_header(raw_name, mode, size, typeflag)
    data = b"".join(_pax_record(key, records[key]) for key in sorted(records))
    directory, _, base = raw_name.rpartition(b"/")
    pax_name = (directory + b"/PaxHeaders.0/" + base) if directory else b"PaxHeaders.0/" + base
    pax_name = bytes(byte for byte in pax_name if 0 < byte < 0x80)[:100].rstrip(b"/")
    block = bytearray(BLOCK)
    block[156:157] = b"x"
    _put_string(block, 0, 100, pax_name)
    for offset, width in ((100, 8), (108, 8), (116, 8), (124, 12), (136, 12)):
        _put_octal(block, offset, width, len(data) if offset == 124 else 0)
    ascii_name = bytes(byte for byte in raw_name if 0 < byte < 0x80)
    return _finish(block) + data + padding(len(data)) + _main_header(ascii_name, mode, size, typeflag)


def padding(size: int) -> bytes:
    return b"\x00" * (-size % BLOCK)
