"""Errors a user can cause and fix: the command line prints them as one line, without a traceback."""


class MultifieldError(Exception):
    """A mistake in the user's input (a file, a config, a flag), reported in one line."""


class ConfigError(MultifieldError):
    """A config file that cannot be read or does not validate; the message names the key."""


class DataError(MultifieldError):
    """A data file that cannot be read; the message names the file, the line and the field."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None, field: str | None = None):
        where = ", ".join(
            part
            for part in (
                str(path) if path is not None else None,
                f"line {line}" if line is not None else None,
                f"field {field!r}" if field is not None else None,
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.path, self.line, self.field = path, line, field


class BundleError(MultifieldError):
    """A model bundle that is missing, truncated or not trusted; the message names the file."""
