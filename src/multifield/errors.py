"""Errors a user can cause and fix: the command line prints them as one line, without a traceback."""


class MultifieldError(Exception):
    """A mistake in the user's input (a file, a config, a flag), reported in one line."""


class ConfigError(MultifieldError):
    """A config file that cannot be read or does not validate; the message names the key."""


class DataError(MultifieldError):
    """A data file that cannot be read; the message names the file, the line and the field."""

    def __init__(
        self,
        message: str,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
        line_kind: str = "line",
    ):
        where = ", ".join(
            part
            for part in (
                str(path) if path is not None else None,
                f"{line_kind} {line}" if line is not None else None,
                f"field {field!r}" if field is not None else None,
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.path, self.line, self.field = path, line, field
        self.reason = message


class BundleError(MultifieldError):
    """A model bundle that is missing, truncated or not trusted; the message names the file."""


class CheckpointError(MultifieldError):
    """A training checkpoint that cannot be read or belongs to another run; the message names the file."""


class TrainingError(MultifieldError):
    """A training run that cannot go on (a NaN or infinite loss); the message names the epoch and the batch."""


class DataWarning(UserWarning):
    """A value the reader changed because its meaning was clear (a number in a text field); said once per field."""


class GraphError(MultifieldError):
    """A model that cannot be written as an ONNX graph (an encoder kind the graph does not have); the message
    names the field."""
