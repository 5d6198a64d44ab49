"""The one base class for errors caused by user input (config, data, files, devices), and its warning.

The CLI prints these as a single ``mtnet: error: ...`` line and exits 2; anything else is a bug and keeps
its traceback. Sub-packages (export, calibration, android_bench) derive their errors from it too.
A :class:`MtnetWarning` (``warnings.warn``) is printed by the CLI as one ``mtnet: warning: ...`` line.
"""


class UserError(Exception):
    """Bad input from the user or the environment; the message says what and where."""


class MtnetWarning(UserWarning):
    """A choice of the user's that mtnet carries out but that likely costs accuracy or time; says which."""
