"""What a command computed, as the JSON object it prints, with its warnings.

The command line prints :attr:`Report.output` as JSON and the warnings on stderr, and
exits with :attr:`Report.exit_code`; a service answering a job returns the same object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Report"]

#: exit code of a command whose fits did not all converge (its output says which)
FAILED_EXIT_CODE = 3


@dataclass(frozen=True)
class Report:
    output: dict
    ok: bool = True
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else FAILED_EXIT_CODE
