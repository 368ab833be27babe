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
    """A license whose text names itself in a title. Its match runs from the title to ``end``, then on
    through ``optional_end`` and an ``appendix`` that directly follow (up to ``appendix_end``; an appendix
    lacking ``appendix_needs`` is no part of it, as licensecheck's template spells it otherwise: what it
    holds then counts as a match of its own). ``variants``: (words in the match, id) tried in order."""

    spdx: str
    title: str
    end: str
    appendix: str | None = None
    appendix_end: str | None = None
    optional_end: str | None = None
    appendix_needs: str | None = None
    variants: tuple[tuple[str, str], ...] = ()


_GNU_END = " end of terms and conditions "
_GNU_APPLY = " how to apply these terms to your new programs "
_GNU_APPLY_LIB = " how to apply these terms to your new libraries "
_FULL_TEXTS = (
    # licensecheck's Apache-2.0 ends with section 9; "END OF TERMS AND CONDITIONS" is optional (requests
    # ships the text without it).
    _FullText("Apache-2.0", " apache license version 2 0 january 2004 ",
              " by reason of your accepting any such warranty or additional liability ",
              " appendix how to apply the apache license to your work ", " limitations under the license ",
              optional_end=_GNU_END),
    # licensecheck's GPL-1.0 appendix has the FSF's old address: Debian's copy (51 Franklin Street) does
    # not match it, so its notice ("either version 1, or (at your option) any later version") is a
    # second match and kit names no license.
    _FullText("GPL-1.0", " gnu general public license version 1 february 1989 ",
              " such holder or other party has been advised of the possibility of such damages ",
              " appendix how to apply these terms to your new programs ", " that s all there is to it ",
              optional_end=_GNU_END, appendix_needs=" 675 mass ave cambridge ma 02139 "),
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
    _FullText("GFDL-1.3", " gnu free documentation license version 1 3 3 november 2008 ",
              " provided the mmc is eligible for relicensing ",
              " addendum how to use this license for your documents ", " to permit their use in free software "),
    # The Artistic License 1.0 and its Perl and clause-8 variants share their opening and closing words.
    _FullText("Artistic-1.0", " preamble the intent of this document is to state the conditions under which a "
              "package may be copied ", " the implied warranties of merchantibility and fitness for a particular "
              "purpose ", variants=((" uunet uu net ", "Artistic-1.0-Perl"),
                                    (" aggregation of this package with a commercial distribution is always "
                                     "permitted ", "Artistic-1.0-cl8"))),
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
    r"((?: of the license)? or at your option any later version)?"
)
_SHORT_TEXTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Apache-2.0", re.compile(r" licensed under the apache license version 2 0 ")),
    ("MPL-2.0", re.compile(r" subject to the terms of the mozilla public license v 2 0 ")),
    # licensecheck's PSF-2.0 allows at most 6 words of years in its copyright line: see _short_license_id.
    ("PSF-2.0", re.compile(r" this license agreement is between the python software foundation psf and the "
                           r"individual or organization licensee accessing and otherwise using this software ")),
    ("HPND", re.compile(r" permission to use copy modify and distribute this software and its documentation for "
                        r"any purpose and without fee is hereby granted provided that the above copyright notice "
                        r"appears? in all copies and that both ")),
    ("Zlib", re.compile(r" this software is provided as is without any express or implied warranty in no event "
                        r"will the authors be held liable for any damages arising from the use of this software "
                        r"permission is granted to anyone to use this software for any purpose ")),
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


def _short_license_id(spdx: str, words: str, end: int) -> str | None:
    """Tell apart the variants of a short license by the wording right after its opening (None: not a match
    after all)."""
    after = words[end : end + 1500]
    if spdx == "PSF-2.0":
        copyright_line = re.search(r" copyright c ((?:[a-z0-9]+ )*?)python software foundation all rights reserved ",
                                   after[:800])  # fmt: skip
        return spdx if copyright_line and len(copyright_line[1].split()) <= 6 else None
    if spdx == "MIT":
        conditioned = " the above copyright notice and this permission notice shall be included " in after
        return "MIT" if conditioned else "MIT-0"
    if spdx == "ISC":
        return "ISC" if after.startswith("provided that the above copyright notice ") else "0BSD"
    if spdx == "BSD":
        if " all advertising materials mentioning features or use of this software " in after:
            return "BSD-4-Clause"
        if re.search(r" (?:may|shall) (?:not )?be used to endorse or promote products ", after):
            if " the copyright holders provide no reassurances that the source code provided does not " in after:
                return "BSD-3-Clause-Open-MPI"
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
    if full.optional_end and words.startswith(full.optional_end, end):
        end += len(full.optional_end) - 1
    if full.appendix and full.appendix_end and words.startswith(full.appendix, end):
        appendix_end = words.find(full.appendix_end, end)
        appendix_end = len(words) if appendix_end < 0 else appendix_end + len(full.appendix_end) - 1
        if full.appendix_needs is None or full.appendix_needs in words[end:appendix_end]:
            return appendix_end
    return end


def _license_matches(words: str) -> list[tuple[int, int, str]]:
    full_texts: dict[tuple[str, int], int] = {}  # (id, end) -> start
    for full in _FULL_TEXTS:
        for title in re.finditer(re.escape(full.title), words):
            end = _full_text_end(full, words, title.end())
            if end is not None:
                span = words[title.start() : end]
                spdx = next((variant for phrase, variant in full.variants if phrase in span), full.spdx)
                # Titles quoted earlier (a list of licenses) share the real text's end: keep the last.
                full_texts[(spdx, end)] = title.start()
    matches = [(start, end, spdx) for (spdx, end), start in full_texts.items()]
    for short, pattern in _SHORT_TEXTS:
        for match in pattern.finditer(words):
            found = _short_license_id(short, words, match.end())
            if found is not None:
                matches.append((match.start(), match.end(), found))
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
