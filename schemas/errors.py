"""The one exception the CLI turns into a single clear line (and a non-zero exit), no traceback."""


class UserError(Exception):
    """Bad input or configuration the user can fix; the message says what and how."""
