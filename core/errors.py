"""User-facing errors: the CLI prints their message on one line and exits non-zero."""


class UserError(Exception):
    """A mistake the user can fix (bad path, bad option, unreadable file).

    The CLI turns it into a one-line ``error: ...`` message and exit status 2, never a traceback.
    """
