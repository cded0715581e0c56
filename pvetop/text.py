"""Text from the API or the store made safe to show on a terminal.

Guest names, tags, descriptions, node and cluster names, error texts and stored rule notes come
from the cluster (or a store it once filled) and may carry terminal control sequences: ESC starts
the sequences that set the window title (OSC 0), write the clipboard (OSC 52), clear the screen
or leave the alternate screen; 0x9B is a one-byte CSI on terminals that honour C1 controls.
``visible`` turns every such character into a visible stand-in, so the text shows what it holds
and the terminal obeys none of it. Markup escaping is the UI's job (Rich lives there).
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls, and the Unicode bidirectional overrides/isolates that can make
# a line read differently from what it holds (a name that shows "gp.exe" for "exe.pg")
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_KEEPING_NEWLINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
CONTROL_PICTURES = 0x2400  # U+2400 "␀" .. U+241F "␟": one picture per C0 control
DELETE_PICTURE = "\u2421"  # "␡"


def _stand_in(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if code < 0x20:
        return chr(CONTROL_PICTURES + code)  # ESC -> "␛", BEL -> "␇", newline -> "␊"
    if code == 0x7F:
        return DELETE_PICTURE
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"  # C1 and bidi: no picture exists


def visible(value: object, *, multiline: bool = False) -> str:
    """``value`` as text with every control character shown, not obeyed.

    ``multiline`` keeps line breaks and tabs (a guest's description, a command's output);
    without it the text stays on one line (a table cell, a title).
    """
    text = value if isinstance(value, str) else str(value)
    pattern = _UNSAFE_KEEPING_NEWLINES if multiline else _UNSAFE
    return pattern.sub(_stand_in, text)
