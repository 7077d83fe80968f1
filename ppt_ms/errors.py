"""The base of the errors ppt_ms raises about what it was given; tools print them as one line (ppt_ms.cli)."""


class PPTMSError(Exception):
    """A setting, file, network or run that cannot be used.  The message names it and, where it can, the fix;
    `details` (lines) says everything, for a tool's --verbose."""

    def __init__(self, message: str = "", details=()):
        super().__init__(message)
        self.details = list(details)
