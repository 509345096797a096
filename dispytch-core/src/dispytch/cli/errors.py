"""Errors the command line reports without a traceback."""


class CommandError(Exception):
    """A problem the user can fix; printed without a traceback."""
