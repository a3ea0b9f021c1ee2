"""Breach data shown as text, and nothing more.

Records are written by criminals, so a value shown to an analyst must not
become a link, an image, HTML or another table row where XDR renders it:
`label` makes plain text of it (invisible and control characters dropped,
cut to a bound), `markdown` also escapes every markdown metacharacter.
"""

from __future__ import annotations

import string
import unicodedata

LABEL_LENGTH = 200  # a tile label, a refer title: characters at most
CELL_LENGTH = 128  # a markdown table cell

# Line and paragraph breaks of any kind become spaces: a cell or label
# stays on one line (a `\r` would start a new table row).
_BREAKS = dict.fromkeys(map(ord, "\t\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029"), " ")
# Every ASCII punctuation character, which CommonMark lets a backslash
# escape: all that can start markup (links, images, HTML, emphasis, code,
# tables), and `&` (an entity such as `&lt;` would be decoded).
_MARKUP = frozenset(string.punctuation)
# Unicode's categories of characters that show nothing of their own:
# controls, format characters (bidi overrides, zero-width marks),
# separators of lines and paragraphs, private use, unassigned, surrogates.
_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cn", "Cs"})


def visible(text: str) -> bool:
    """Say whether *text* holds only characters that show themselves
    (spaces included), none that hide, reorder or break lines."""
    return not any(unicodedata.category(ch) in _INVISIBLE for ch in text)


def label(text: str, limit: int = LABEL_LENGTH) -> str:
    """Return *text* as one line of plain text: breaks become spaces,
    invisible characters are dropped, and it is cut to *limit* characters
    (ending in `…` when cut)."""
    line = text.translate(_BREAKS)
    if not visible(line):
        line = "".join(ch for ch in line
                       if unicodedata.category(ch) not in _INVISIBLE)
    return line if len(line) <= limit else line[:limit - 1] + "…"


def markdown(text: str, limit: int = CELL_LENGTH) -> str:
    """Return *text* as a markdown table cell that renders as exactly its
    characters: a `label`, each metacharacter escaped with a backslash."""
    return "".join("\\" + ch if ch in _MARKUP else ch
                   for ch in label(text, limit))
