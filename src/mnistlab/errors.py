"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class MnistlabError(Exception):
    """An error caused by the user's input or environment, not a bug: no traceback is shown."""

    def _render_traceback_(self) -> list[str]:
        # IPython/Jupyter show this instead of the traceback: the message, not mnistlab's frames
        return [f"{type(self).__name__}: {self}"]


class ConfigError(MnistlabError):
    """A bad value in a config, flag or suite file."""


class DataError(MnistlabError):
    """MNIST files missing, corrupted or unobtainable."""


def first_line(error: BaseException) -> str:
    """An error's message cut to its first non-blank line (its type's name when it has none):
    what a one-line error quotes from an exception raised by a library or a user's code."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def choices_error(what: str, value: object, choices: "list[str] | tuple[str, ...]") -> ConfigError:
    """The one-line error for a value that is not one of the valid choices."""
    return ConfigError(f"unknown {what} {value!r}; valid choices: {', '.join(sorted(choices))}")
