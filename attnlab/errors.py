"""User-facing errors.

A :class:`UserError` is a mistake the user can fix (a wrong override, a missing file, a corrupt
checkpoint...). The command-line entry point prints it as one line, ``error: <message>``, and exits
with its ``exit_code`` (2), without a traceback. Everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A mistake in the user's input; the message says what is wrong and how to fix it."""

    exit_code = 2


class TrainingInterrupted(UserError):
    """Ctrl-C or SIGTERM during training: the state was saved; the message says how to resume."""

    exit_code = 130
