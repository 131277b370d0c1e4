"""The exception types that ganforge raises for problems a user can fix."""


class GanforgeError(Exception):
    """A problem with the user's input, data or files, explained in one line.

    The command-line interface prints the message as ``ganforge: error: <message>`` and exits
    with :attr:`exit_code` (2 unless a subclass says otherwise); it never shows a traceback for
    this type.
    """

    exit_code = 2


def first_line(exc: BaseException) -> str:
    """An exception's first line of text (its type's name when it has none): what a one-line
    error message can quote of a library's multi-line one."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def one_line(exc: BaseException) -> str:
    """What a failure says in one line: ganforge's own message, else its type and first line."""
    if isinstance(exc, GanforgeError):
        return str(exc)
    return f"{type(exc).__name__}: {first_line(exc)}"


class TrainingStopped(GanforgeError):
    """Training stopped on a signal after writing a checkpoint it can resume from.

    The exit code is the shell's convention for death by that signal, ``128 + signum``: 130
    for SIGINT (Ctrl-C), 143 for SIGTERM.
    """

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum
