"""The doctor's table: one row per check, with the fix under every row that is not OK."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import Enum


class Status(str, Enum):
    OK = "OK"
    WARN = "WARN"  # deploys and runs, but someone will miss something (the group cannot see the schema)
    FAIL = "FAIL"  # the deploy or the first run of a job fails


@dataclass(frozen=True)
class Row:
    check: str
    subject: str
    status: Status
    detail: str = ""
    fix: str = ""  # a SQL statement, a CLI command or a console step; empty when OK


HEADER = ("CHECK", "SUBJECT", "STATUS", "DETAIL")


def render(rows: list[Row]) -> str:
    """Aligned columns; the fix on indented lines under its row, whole, ready to copy."""
    cells = [HEADER, *[(r.check, r.subject, r.status.value, r.detail) for r in rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    indent = " " * 4
    lines = ["  ".join([*(c[i].ljust(widths[i]) for i in range(3)), c[3]]).rstrip() for c in cells[:1]]
    for row, cell in zip(rows, cells[1:], strict=True):
        lines.append("  ".join([*(cell[i].ljust(widths[i]) for i in range(3)), cell[3]]).rstrip())
        for i, line in enumerate(row.fix.splitlines()):
            lines.append(f"{indent}{'fix: ' if i == 0 else '     '}{line}")
    counts = Counter(r.status for r in rows)
    lines.append("")
    lines.append(", ".join(f"{counts[s]} {s.value}" for s in (Status.FAIL, Status.WARN, Status.OK)))
    return "\n".join(lines) + "\n"


def exit_code(rows: list[Row]) -> int:
    """0 when nothing fails (warnings included), 1 otherwise."""
    return 1 if any(r.status is Status.FAIL for r in rows) else 0
