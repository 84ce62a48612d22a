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
