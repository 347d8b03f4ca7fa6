"""User-facing errors: one line that names the problem and the fix.

Every input problem a user can cause (an unknown model spec, a missing system package,
an unreadable file, a bad number) raises :class:`UserError`. The CLI prints its message on
one line and exits with status 2 — never a bare traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment, with the fix in the message."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} — {fix}" if fix else problem)


def require(condition: bool, problem: str, fix: str | None = None) -> None:
    """Raise :class:`UserError` unless ``condition`` holds."""
    if not condition:
        raise UserError(problem, fix)
