"""go-yaml v3's scalar rules (gopkg.in/yaml.v3 v3.0.1, the YAML library of kit 1.7.0), in Python.

kit reads a Kitfile with go-yaml, whose resolution of plain scalars is neither YAML 1.1 (PyYAML's) nor
YAML 1.2's core schema: ``1e-05``, ``0o17``, ``0x1F``, ``017`` (octal), ``1_000`` and ``08`` are numbers,
``2024-1-2`` is a timestamp, ``yes``/``on``/``10:30`` are strings, ``true``/``True``/``TRUE`` are the only
booleans. A free-form ``parameters`` value gets that type in kit's config (and a timestamp is written
there as RFC 3339); a string field gets the scalar's text whatever it resolves to. Two uses here:

- :func:`resolve` types a scalar as kit's decoder does (the Kitfile reader);
- :func:`plain_reads_as_string` says whether a string may be written plain (the Kitfile writer quotes the
  rest, as go-yaml's encoder does, so the string reaches kit as that same string).

The rules were read from go-yaml's ``resolve.go`` and ``decode.go`` and from Go's ``strconv`` and
``time.Parse``; ``tests/kit_vectors/recorded/scalars.json`` pins them against the real kit.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

CORE = "tag:yaml.org,2002:"
STR, NULL, BOOL, INT, FLOAT = CORE + "str", CORE + "null", CORE + "bool", CORE + "int", CORE + "float"
TIMESTAMP, BINARY, MERGE, SEQ, MAP = CORE + "timestamp", CORE + "binary", CORE + "merge", CORE + "seq", CORE + "map"
_RESOLVABLE = frozenset({STR, NULL, BOOL, INT, FLOAT, TIMESTAMP})

_INT64_MIN, _INT64_MAX, _UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1

# The words go-yaml looks up before anything else (its resolve map). Nothing else is a bool or a null.
_WORDS: dict[str, tuple[str, Any]] = {
    **dict.fromkeys(("true", "True", "TRUE"), (BOOL, True)),
    **dict.fromkeys(("false", "False", "FALSE"), (BOOL, False)),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), (NULL, None)),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), (FLOAT, float("nan"))),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), (FLOAT, float("inf"))),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), (FLOAT, float("-inf"))),
}
# go-yaml only tries to resolve a scalar whose first character hints at a type: a sign, a digit, '.', or
# the first letter of one of the words above. Anything else is a string at once.
_HINTED = frozenset("+-0123456789.yYnNtTfFoO~")

_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")  # go-yaml's yamlStyleFloat
_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?")  # what Go's ParseFloat takes of a text starting with "."
# Go's strconv.ParseUint(s, 0, 64) syntax, after go-yaml removed every "_": a base prefix or a leading 0
# (octal), then at least one digit of that base.
_GO_UNSIGNED = re.compile(r"0[xX]([0-9a-fA-F]+)|0[oO]([0-7]+)|0[bB]([01]+)|0([0-7]+)|(0|[1-9][0-9]*)")
_BASES = (16, 8, 2, 8, 10)


@dataclass(frozen=True)
class Timestamp:
    """A scalar go-yaml reads as a ``time.Time``: ``rfc3339`` is what Go's JSON encoder writes for it (the
    text kit's config holds), ``None`` where that encoder refuses it (a zone offset of 24 hours or more)."""

    text: str
    rfc3339: str | None


class GoYamlError(ValueError):
    """A scalar go-yaml refuses to decode (an explicit tag its text does not fit, bad !!binary data)."""


def resolve(tag: str | None, text: str) -> tuple[str, Any]:
    """The tag and value go-yaml v3 decodes a scalar into (its ``resolve`` followed by the decoder's
    !!binary and timestamp handling): ``tag`` is the scalar's explicit tag (``None`` or ``""`` for a plain
    scalar without one; a quoted one is ``STR``). Numbers are ``int``/``float`` (an integer past uint64 is
    a float, as in Go), a timestamp a :class:`Timestamp`, ``!!binary`` is the decoded text; a tag that is none of the core types keeps the text. Raises GoYamlError."""
    tag = tag or ""
    if tag == BINARY:
        return BINARY, decode_binary(text)
    if tag and tag not in _RESOLVABLE:
        return tag, text
    resolved = STR, text
    if tag != STR and (not text or text[0] in _HINTED):
        resolved = _resolve_hinted(text, timestamps=tag in ("", TIMESTAMP))
    found_tag, value = resolved
    if not tag or tag in (found_tag, STR):
        return (STR, text) if tag == STR else resolved
    if tag == FLOAT and found_tag == INT:
        return FLOAT, float(value)
    raise GoYamlError(f"cannot decode {_short(found_tag)} `{text}` as a {_short(tag)}")


def _resolve_hinted(text: str, *, timestamps: bool) -> tuple[str, Any]:
    word = _WORDS.get(text)
    if word is not None:
        return word
    first = text[0]
    if first == ".":
        if _DOT_FLOAT.fullmatch(text):
            fraction = float(text)
            if fraction not in (float("inf"), float("-inf")):  # Go's ParseFloat: out of range is an error
                return FLOAT, fraction
        return STR, text
    if first not in "+-0123456789":
        return STR, text
    if timestamps:
        stamp = parse_timestamp(text)
        if stamp is not None:
            return TIMESTAMP, stamp
    plain = text.replace("_", "")
    number = _go_parse_int(plain)
    if number is not None:
        return INT, number
    if _YAML_FLOAT.fullmatch(plain):
        value = float(plain)
        if value not in (float("inf"), float("-inf")):
            return FLOAT, value
    return STR, text


def _go_parse_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64), else strconv.ParseUint(text, 0, 64) (which takes no sign)."""
    sign = text[:1] if text[:1] in ("+", "-") else ""
    match = _GO_UNSIGNED.fullmatch(text[len(sign) :])
    if match is None:
        return None
    group = match.lastindex or 0
    magnitude = int(match.group(group), _BASES[group - 1])
    value = -magnitude if sign == "-" else magnitude
    if _INT64_MIN <= value <= _INT64_MAX:
        return value
    if not sign and value <= _UINT64_MAX:
        return value
    return None


def decode_binary(text: str) -> str:
    """A !!binary scalar's bytes as text (Go's base64.StdEncoding ignores line breaks). Bytes that are not
    UTF-8 become lone surrogates, which the JSON writer turns into U+FFFD one per byte, as Go's does."""
    try:
        data = base64.b64decode(text.replace("\n", "").replace("\r", ""), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise GoYamlError("!!binary value contains invalid base64 data") from exc
    return data.decode("utf-8", "surrogateescape")


def plain_reads_as_string(text: str) -> bool:
    """Whether go-yaml reads ``text`` written plain as that string: go-yaml's encoder quotes the rest (it
    also quotes YAML 1.1 booleans and base-60 numbers, for other readers). ``<<`` is quoted too: plain,
    it is a merge key."""
    return (
        text != "<<"
        and resolve(None, text)[0] == STR
        and text not in _OLD_BOOLS
        and not (text[:1] in "+-0123456789" and ":" in text and _BASE_60.fullmatch(text) is not None)
    )


_OLD_BOOLS = frozenset(
    ["y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "n", "N", "no", "No", "NO", "off", "Off", "OFF"]
)
_BASE_60 = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")


def _short(tag: str) -> str:
    return "!!" + tag.removeprefix(CORE) if tag.startswith(CORE) else tag


# -- timestamps: go-yaml's four layouts, parsed as Go's time.Parse does --------------------------------------
# "2006-1-2T15:4:5.999999999Z07:00" (also with a lower-case t), "2006-1-2 15:4:5.999999999", "2006-1-2":
# one- or two-digit fields, an optional fraction (',' or '.', any number of digits, nanoseconds kept),
# and a zone that is Z or ±hh:mm. A space of a layout matches a run of spaces.
_TIMESTAMP = re.compile(
    r"(?P<y>[0-9]{4})-(?P<m>[0-9]{1,2})-(?P<d>[0-9]{1,2})"
    r"(?:(?P<sep>[Tt]| +)(?P<H>[0-9]{1,2}):(?P<M>[0-9]{1,2}):(?P<S>[0-9]{1,2})(?:[.,](?P<frac>[0-9]+))?"
    r"(?P<zone>Z|[+-][0-9]{2}:[0-9]{2})?)?"
)
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def parse_timestamp(text: str) -> Timestamp | None:
    """The timestamp go-yaml reads ``text`` as, with its RFC 3339 text (Go's ``time.RFC3339Nano``, as its
    JSON encoder writes a ``time.Time``), or ``None`` if ``text`` is no timestamp to go-yaml."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    parts = match.groupdict()
    clock = _clock(parts)
    offset = _zone_minutes(parts["zone"])
    if clock is None or offset is None:
        return None
    if offset >= 24 * 60:  # time.Time.MarshalJSON: "timezone hour outside of range [0,23]"
        return Timestamp(text, None)
    zone = f"{parts['zone'][0]}{offset // 60:02d}:{offset % 60:02d}" if offset else "Z"
    fraction = (parts["frac"] or "")[:9].rstrip("0")
    return Timestamp(text, clock + (f".{fraction}" if fraction else "") + zone)


def _clock(parts: dict[str, Any]) -> str | None:
    """The date and time to the second (``YYYY-MM-DDThh:mm:ss``), or None when they are not a valid one."""
    sep = parts["sep"]
    if sep is not None and sep.startswith(" ") == (parts["zone"] is not None):
        return None  # T/t need a zone; a space takes none
    year, month, day = int(parts["y"]), int(parts["m"]), int(parts["d"])
    hour, minute, second = (int(parts[k]) for k in "HMS") if sep is not None else (0, 0, 0)
    if not (1 <= month <= 12 and hour < 24 and minute < 60 and second < 60):
        return None
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= day <= _DAYS_IN_MONTH[month - 1] + (month == 2 and leap):
        return None
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"


def _zone_minutes(zone: str | None) -> int | None:
    """The zone's distance from UTC in minutes (none or Z: 0), or None when Go refuses it."""
    if zone is None or zone == "Z":
        return 0
    hours, minutes = int(zone[1:3]), int(zone[4:6])
    if hours > 24 or minutes > 60:  # Go allows 24 and 60 themselves
        return None
    return hours * 60 + minutes
