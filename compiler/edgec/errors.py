"""The one exception type for user mistakes: the CLI prints its message and exits with code 2."""


class EdgecError(Exception):
    """A problem with the user's input (file, model, data, option), explained in one line."""
