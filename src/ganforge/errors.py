"""The exception types that ganforge raises for problems a user can fix."""


class GanforgeError(Exception):
    """A problem with the user's input, data or files, explained in one line.

    The command-line interface prints the message as ``ganforge: error: <message>`` and exits
    with :attr:`exit_code` (2 unless a subclass says otherwise); it never shows a traceback for
    this type.
    """

    exit_code = 2


class TrainingStopped(GanforgeError):
    """Training stopped on a signal after writing a checkpoint it can resume from.

    The exit code is the shell's convention for death by that signal, ``128 + signum``: 130
    for SIGINT (Ctrl-C), 143 for SIGTERM.
    """

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum
