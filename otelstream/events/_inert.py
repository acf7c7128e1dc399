"""Text from runs made inert for a terminal or a log line: every control character shown escaped.

Names, errors, log lines and parameters come from task code and from whoever
starts runs. Written as they are, an ESC or a C1 CSI byte would let them set a
terminal's title, move its cursor or rewrite earlier lines, and a line break
would start a log line of their own. `inert` writes each such character as a
visible escape (`\\x1b`, `\\n`, `\\u2028`): the text still reads, nothing in it
acts. The server's log and every line of the `otelstream` command use it.
"""

from __future__ import annotations

CONTROL: dict[int, str] = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
CONTROL |= {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}
# line and paragraph separators (a new line to some readers), and the bidirectional overrides
# and isolates that make text display in another order than it reads ("trojan source")
CONTROL |= {code: f"\\u{code:04x}" for code in (0x2028, 0x2029, *range(0x202A, 0x202F))}
CONTROL |= {code: f"\\u{code:04x}" for code in range(0x2066, 0x206A)}
"""C0 and C1 controls, DEL, line separators and bidi controls, each with its visible escape."""


def inert(text: object) -> str:
    """`text` as a string that cannot drive a terminal or start a line: controls escaped."""
    return str(text).translate(CONTROL)


__all__ = ["CONTROL", "inert"]
