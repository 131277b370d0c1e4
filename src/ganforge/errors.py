"""The one exception type that ganforge raises for problems a user can fix."""


class GanforgeError(Exception):
    """A problem with the user's input, data or files, explained in one line.

    The command-line interface prints the message as ``ganforge: error: <message>`` and exits
    with status 2; it never shows a traceback for this type.
    """
