"""Error types whose message is shown to the user as one line.

Library code raises these for problems the user can fix (a wrong path, a bad option, a file
that is not a model). The CLI turns them into ``error: <message>`` and exit code 2, so a user
never sees a traceback for their own mistake.
"""

from __future__ import annotations


class EdgeCNNError(Exception):
    """A problem the user can act on. ``str(err)`` is the whole message, fix included."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(f"{message} ({hint})" if hint else message)


class UsageError(EdgeCNNError):
    """Bad input: options, paths, datasets or model files. The CLI exits with code 2."""

    exit_code = 2


class MissingDependencyError(UsageError):
    """An optional package is needed for this command; the message says what to install."""

    def __init__(self, package: str, extra: str | None = None, purpose: str = ""):
        fix = f"pip install 'edgecnn[{extra}]'" if extra else f"pip install {package}"
        what = f" for {purpose}" if purpose else ""
        super().__init__(f"{package} is not installed{what}", f"install it with: {fix}")
