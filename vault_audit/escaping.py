"""Log values made safe to show a person: every control character a visible escape.

User agents, labels, paths and IdP traits come from the people being investigated.
Shown raw, an ESC byte starts a terminal escape sequence and a bidirectional override
reorders the text around it; shown as ``\\x1b`` or ``\\u202e`` they are only text.
"""

from __future__ import annotations

import re

_UNSAFE_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean_text(value: str) -> str:
    """``value`` with every control character shown as a visible escape (``\\x1b``)."""
    return _UNSAFE_CHARACTERS.sub(_visible_escape, value)


def _visible_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
