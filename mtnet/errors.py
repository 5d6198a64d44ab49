"""The one base class for errors caused by user input (config, data, files, devices).

The CLI prints these as a single ``mtnet: error: ...`` line and exits 2; anything else is a bug and keeps
its traceback. Sub-packages (export, calibration, android_bench) derive their errors from it too.
"""


class UserError(Exception):
    """Bad input from the user or the environment; the message says what and where."""
