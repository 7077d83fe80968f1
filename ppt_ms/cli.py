"""How every tool ends: results on stdout, or one line `error: ...` on stderr and exit status 1."""
import sys
from typing import Callable

from .data import pipeline_error_message
from .errors import PPTMSError

# What a tool reports as a problem with its input, not as a bug: ppt_ms's own errors, and the
# ValueError, OSError and RuntimeError that MindSpore, the file system and the data pipeline raise
# for a bad setting, a missing file or an unreadable image.
INPUT_ERRORS = (PPTMSError, ValueError, OSError, RuntimeError)


def error_line(error: BaseException) -> str:
    """The one line a tool prints for `error`: ppt_ms's message as written; of anything else,
    the line naming the bad file (data pipeline) or the first line."""
    if isinstance(error, PPTMSError):
        return "error: %s" % " ".join(str(error).split("\n"))
    lines = pipeline_error_message(error).strip().splitlines()
    return "error: %s" % (lines[0] if lines else type(error).__name__)


def run_tool(work: Callable[[], object], verbose: bool = False) -> int:
    """Run a tool's `work`; 0 when it returns, 1 after printing the error line of an INPUT_ERRORS
    (with `verbose`, then the error's details, one per line)."""
    try:
        work()
    except INPUT_ERRORS as error:
        print(error_line(error), file=sys.stderr)
        if verbose:
            for line in getattr(error, "details", ()):
                print("  " + line, file=sys.stderr)
        return 1
    return 0
