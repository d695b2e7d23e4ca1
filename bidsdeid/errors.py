"""Exit codes and the exceptions that carry them.

Exit codes follow the BIDS Apps execution spec draft (bids-standard/execution-spec,
``src/outputs.md``) and ``sysexits.h``. Every error a user can cause is one of the
exceptions below: the CLI turns it into one line on stderr and its exit code, never a
traceback (the traceback goes to the log file in the private dir).
"""

from __future__ import annotations

import enum
import errno
from collections.abc import Iterable


class ExitCode(enum.IntEnum):
    """What the process exit status means."""

    SUCCESS = 0
    FAILURE = 1  # a participant failed (safety gate, leak, conversion) or an internal error
    INVALID_BIDS = 16  # the input, or the output at group level, is not valid BIDS
    NOTHING_SELECTED = 18  # the filters selected no participant / session / file
    USAGE = 64  # bad command line, or an option that is not implemented yet
    DATA = 65  # bad data: unreadable, inconsistent or unsafe input
    NO_INPUT = 66  # an input path does not exist
    CANT_CREATE = 73  # the output (or private, or work) dir cannot be created or written


_SEVERITY = (ExitCode.CANT_CREATE, ExitCode.FAILURE, ExitCode.INVALID_BIDS,
             ExitCode.NO_INPUT, ExitCode.NOTHING_SELECTED, ExitCode.USAGE, ExitCode.DATA)


def worst(codes: Iterable[int]) -> ExitCode:
    """The exit code of a run from the codes of its problems: the output cannot be
    written (73) before a failure (1) before bad input (65); 0 if there is none."""
    found = {int(c) for c in codes}
    return next((c for c in _SEVERITY if int(c) in found),
                ExitCode.FAILURE if found - {0} else ExitCode.SUCCESS)


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
"""errno values that mean the disk (or a quota, or ``ulimit -f``) is full."""


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


class BidsdeidError(Exception):
    """Base class: a problem to report in one line, with an exit code."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(BidsdeidError):
    """The command line is wrong (also: an option that is not implemented yet)."""

    exit_code = ExitCode.USAGE


class NotImplementedOption(UsageError):
    """An option of the interface that this version cannot honour yet.

    Raised instead of silently ignoring the option (BIDSonym's habit).
    """

    def __init__(self, option: str, detail: str = "") -> None:
        msg = f"option {option} is not implemented in this version of bidsdeid"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


class InvalidBidsError(BidsdeidError):
    exit_code = ExitCode.INVALID_BIDS


class NothingSelectedError(BidsdeidError):
    exit_code = ExitCode.NOTHING_SELECTED


class DataError(BidsdeidError):
    """Bad input data. The message names the file or participant, never a header value."""

    exit_code = ExitCode.DATA


class MissingInputError(BidsdeidError):
    exit_code = ExitCode.NO_INPUT


class CannotCreateOutput(BidsdeidError):
    exit_code = ExitCode.CANT_CREATE


class SafetyGateError(BidsdeidError):
    """A participant failed a safety gate (brain cut, face not covered, leak found).

    Nothing of that participant is written to the shareable output.
    """

    exit_code = ExitCode.FAILURE


class LeakError(SafetyGateError):
    """An identifier survived scrubbing (fail closed, heudiconv's habit)."""
