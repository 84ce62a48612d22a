"""The one base of the errors a user can act on.

Every command's `main` runs inside `cli.entry_point`, which turns a `UserError`
into one line, `error: <message>`, and the exit status `exit_code`. Modules
define their own subclasses (`ConfigError`, `DataError`, `ExportError`, ...), so
a caller can tell them apart, and raise them with the whole message; nothing
rewrites a message or passes an exception class around.
"""


class UserError(Exception):
    """Bad input, a file or a setting the user can fix, reported as one line."""

    exit_code = 1


class ArgumentError(ValueError):
    """A library object's constructor argument out of its range: `argument` names
    it, `problem` says what is wrong ("must be in (0, 1); got 1.5"), so a config
    section that built the object can name its own option instead."""

    def __init__(self, owner, argument, problem):
        super().__init__(f"{owner}: argument `{argument}` {problem}")
        self.argument = argument
        self.problem = problem
