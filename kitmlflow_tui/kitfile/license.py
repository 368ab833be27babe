"""License detection, as kit init does it for a root license file.

kit runs github.com/google/licensecheck over the file and keeps the id only when the scan finds
exactly one match: two licenses, the same license twice, or a full text plus a separate notice all
give no license. This detector finds each license by its distinctive wording, gives every match a
span, drops matches inside a longer one (a full text quotes its own notice in its appendix), and
applies the same "exactly one" rule, with licensecheck's ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def _words(text: str) -> str:
    # HTML license files: drop tags and entities (but not <https://...> links of plain-text licenses).
    text = re.sub(r"</?[a-z][a-z0-9]*(?:\s[^<>]{0,300})?/?>|&[a-z]+;|&#\d+;", " ", text, flags=re.IGNORECASE)
    return " " + " ".join(re.findall(r"[a-z0-9]+", text.lower())) + " "


@dataclass(frozen=True)
class _FullText:
    """A license whose text names itself in a title. Its match runs from the title to ``end``, then
    on through an optional ``appendix`` that directly follows, up to ``appendix_end``."""

    spdx: str
    title: str
    end: str
    appendix: str | None = None
    appendix_end: str | None = None


_GNU_END = " end of terms and conditions "
_GNU_APPLY = " how to apply these terms to your new programs "
_GNU_APPLY_LIB = " how to apply these terms to your new libraries "
_FULL_TEXTS = (
    _FullText("Apache-2.0", " apache license version 2 0 january 2004 ", _GNU_END,
              " appendix how to apply the apache license to your work ", " limitations under the license "),
    _FullText("GPL-2.0", " gnu general public license version 2 june 1991 ", _GNU_END, _GNU_APPLY,
              " instead of this license "),
    _FullText("GPL-3.0", " gnu general public license version 3 29 june 2007 ", _GNU_END, _GNU_APPLY,
              " why not lgpl html "),
    _FullText("LGPL-2.0", " gnu library general public license version 2 june 1991 ", _GNU_END, _GNU_APPLY_LIB,
              " that s all there is to it "),
    _FullText("LGPL-2.1", " gnu lesser general public license version 2 1 february 1999 ", _GNU_END,
              _GNU_APPLY_LIB, " that s all there is to it "),
    _FullText("LGPL-3.0", " gnu lesser general public license version 3 29 june 2007 ",
              " permanent authorization for you to choose that version for the library "),
    _FullText("AGPL-3.0", " gnu affero general public license version 3 19 november 2007 ", _GNU_END,
              _GNU_APPLY, " how to apply and follow the gnu agpl see "),
    _FullText("MPL-2.0", " mozilla public license version 2 0 ",
              " incompatible with secondary licenses as defined by the mozilla public license v 2 0 "),
    _FullText("MPL-1.1", " mozilla public license version 1 1 ", " source code for your modifications "),
    _FullText("CC-BY-4.0", " creative commons attribution 4 0 international public license ", " creativecommons org "),
    _FullText("CC-BY-SA-4.0", " creative commons attribution sharealike 4 0 international public license ",
              " creativecommons org "),
    _FullText("CC-BY-NC-4.0", " creative commons attribution noncommercial 4 0 international public license ",
              " creativecommons org "),
    _FullText("CC-BY-NC-SA-4.0",
              " creative commons attribution noncommercial sharealike 4 0 international public license ",
              " creativecommons org "),
    _FullText("CC-BY-ND-4.0", " creative commons attribution noderivatives 4 0 international public license ",
              " creativecommons org "),
    _FullText("CC0-1.0", " cc0 1 0 universal ", " with respect to this cc0 or use of the work "),
    _FullText("BSL-1.0", " boost software license version 1 0 ", " or other dealings in the software "),
)  # fmt: skip

# Short licenses and notices: (id, regex over _words() text). A callable id decides from the match.
_GNU_FAMILIES = {
    "general public license": "GPL",
    "lesser general public license": "LGPL",
    "library general public license": "LGPL",
    "affero general public license": "AGPL",
}
_GNU_NOTICE = re.compile(
    r" under the terms of the gnu (general|lesser general|library general|affero general) public license "
    r"(?:as published by the free software foundation )?(?:either )?version (\d)(?: (\d))?"
    r"( of the license or at your option any later version)?"
)
_SHORT_TEXTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Apache-2.0", re.compile(r" licensed under the apache license version 2 0 ")),
    ("MPL-2.0", re.compile(r" subject to the terms of the mozilla public license v 2 0 ")),
    ("PSF-2.0", re.compile(r" python software foundation license version 2 ")),
    ("Unlicense", re.compile(r" this is free and unencumbered software released into the public domain ")),
    ("CC0-1.0", re.compile(r" dedicated all copyright and related and neighboring rights to this software "
                           r"to the public domain worldwide ")),
    ("MIT", re.compile(r" permission is hereby granted free of charge to any person obtaining a copy of "
                       r"(?:[a-z0-9]+ ){0,15}?to deal in the (?:software|materials) ")),
    ("ISC", re.compile(r" permission to use copy modify and (?:or )?distribute this software for any "
                       r"purpose with or without fee is hereby granted ")),
    ("BSD", re.compile(r" redistribution and use in source and binary forms with or without modification "
                       r"are permitted provided that the following conditions are met ")),
)  # fmt: skip


def _short_license_id(spdx: str, words: str, end: int) -> str:
    """Tell apart the variants of a short license by the wording right after its opening."""
    after = words[end : end + 1500]
    if spdx == "MIT":
        conditioned = " the above copyright notice and this permission notice shall be included " in after
        return "MIT" if conditioned else "MIT-0"
    if spdx == "ISC":
        return "ISC" if after.startswith("provided that the above copyright notice ") else "0BSD"
    if spdx == "BSD":
        if " all advertising materials mentioning features or use of this software " in after:
            return "BSD-4-Clause"
        if re.search(r" (?:may|shall) (?:not )?be used to endorse or promote products ", after):
            return "BSD-3-Clause"
        return "BSD-2-Clause"
    return spdx


def _full_text_end(full: _FullText, words: str, start: int) -> int | None:
    """Where a full text that starts at ``start`` ends; None when its closing words are missing (a
    title alone, as in a list of licenses, is not the license)."""
    closing = words.find(full.end, start)
    if closing < 0:
        return None
    end = closing + len(full.end) - 1
    if full.appendix and full.appendix_end and words.startswith(full.appendix, end):
        appendix_end = words.find(full.appendix_end, end)
        return len(words) if appendix_end < 0 else appendix_end + len(full.appendix_end) - 1
    return end


def _license_matches(words: str) -> list[tuple[int, int, str]]:
    full_texts: dict[tuple[str, int], int] = {}  # (id, end) -> start
    for full in _FULL_TEXTS:
        for title in re.finditer(re.escape(full.title), words):
            end = _full_text_end(full, words, title.end())
            if end is not None:
                # Titles quoted earlier (a list of licenses) share the real text's end: keep the last.
                full_texts[(full.spdx, end)] = title.start()
    matches = [(start, end, spdx) for (spdx, end), start in full_texts.items()]
    for spdx, pattern in _SHORT_TEXTS:
        for match in pattern.finditer(words):
            matches.append((match.start(), match.end(), _short_license_id(spdx, words, match.end())))
    for match in _GNU_NOTICE.finditer(words):
        family = _GNU_FAMILIES[f"{match[1]} public license"]
        version = f"{match[2]}.{match[3] or '0'}"
        matches.append((match.start(), match.end(), f"{family}-{version}-{'or-later' if match[4] else 'only'}"))
    return matches


def detect_license_id(text: str) -> str:
    """The SPDX id of a license file's text; "" when no license or more than one match is found."""
    matches = _license_matches(_words(text))
    kept = [
        m
        for m in matches
        if not any(o is not m and o[0] <= m[0] and m[1] <= o[1] and o[1] - o[0] > m[1] - m[0] for o in matches)
    ]
    return kept[0][2] if len(kept) == 1 else ""
