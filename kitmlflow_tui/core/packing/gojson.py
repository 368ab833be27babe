"""JSON bytes exactly as Go's ``encoding/json.Marshal`` writes them.

kit hashes the JSON it marshals (config, manifest), so a ModelKit written here only gets kit's
digests if every byte matches: no spaces, struct fields in declaration order, map keys sorted by
their UTF-8 bytes, ``<``, ``>``, ``&``, U+2028 and U+2029 escaped, floats in Go's shortest form.

Values are plain Python data. A ``dict`` is a Go struct (its insertion order is kept, the caller
has already applied ``omitempty``); a :class:`GoMap` is a Go map (keys are sorted when encoding).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1

_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


class GoMap(dict):
    """A mapping that Go stores as a ``map[string]...``: encoded with its keys sorted."""


class UnsupportedValue(ValueError):
    """A value Go's JSON encoder refuses (NaN, infinity) or that has no Go counterpart."""


def dumps(value: Any) -> bytes:
    """The bytes ``json.Marshal`` would produce for ``value``."""
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts).encode("utf-8")


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(encode_string(value))
    elif isinstance(value, int):
        out.append(encode_int(value))
    elif isinstance(value, float):
        out.append(encode_float(value))
    elif isinstance(value, GoMap):
        _encode_object([(key, value[key]) for key in sorted(value, key=lambda k: k.encode("utf-8"))], out)
    elif isinstance(value, dict):
        _encode_object(list(value.items()), out)
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise UnsupportedValue(f"{type(value).__name__} values cannot be written as JSON")


def _encode_object(items: list[tuple[str, Any]], out: list[str]) -> None:
    out.append("{")
    for index, (key, item) in enumerate(items):
        if index:
            out.append(",")
        out.append(encode_string(key))
        out.append(":")
        _encode(item, out)
    out.append("}")


def encode_string(text: str) -> str:
    pieces = ['"']
    for char in text:
        escaped = _SHORT_ESCAPES.get(char)
        if escaped is not None:
            pieces.append(escaped)
        elif char < " ":
            pieces.append(f"\\u{ord(char):04x}")
        elif "\ud800" <= char <= "\udfff":
            # Go replaces invalid UTF-8 with U+FFFD; a lone surrogate is Python's version of that.
            pieces.append("\ufffd")
        else:
            pieces.append(char)
    pieces.append('"')
    return "".join(pieces)


def encode_int(number: int) -> str:
    # yaml.v3 decodes integers into int64, then uint64, and anything larger into float64.
    if _INT64_MIN <= number <= _UINT64_MAX:
        return str(number)
    return encode_float(float(number))


def encode_float(number: float) -> str:
    """Go's ``float64`` encoding: shortest round-trip digits, exponent only below 1e-6 or from 1e21."""
    if math.isnan(number) or math.isinf(number):
        raise UnsupportedValue(f"{number!r} cannot be written as JSON")
    if number == 0:
        return "-0" if math.copysign(1.0, number) < 0 else "0"
    sign, digit_tuple, exponent = Decimal(repr(number)).as_tuple()
    digits = "".join(map(str, digit_tuple))
    stripped = digits.rstrip("0")
    exponent = int(exponent) + len(digits) - len(stripped)
    digits = stripped or "0"
    prefix = "-" if sign else ""
    magnitude = abs(number)
    if magnitude < 1e-6 or magnitude >= 1e21:
        decimal_exponent = exponent + len(digits) - 1
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        exponent_sign = "-" if decimal_exponent < 0 else "+"
        # Go prints at least two exponent digits, then trims "e-07" back to "e-7".
        exponent_text = f"{abs(decimal_exponent):02d}"
        if decimal_exponent < 0 and exponent_text.startswith("0"):
            exponent_text = exponent_text[1:]
        return f"{prefix}{mantissa}e{exponent_sign}{exponent_text}"
    if exponent >= 0:
        return prefix + digits + "0" * exponent
    point = len(digits) + exponent
    if point > 0:
        return f"{prefix}{digits[:point]}.{digits[point:]}"
    return f"{prefix}0.{'0' * -point}{digits}"
