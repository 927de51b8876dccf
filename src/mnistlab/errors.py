"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class MnistlabError(Exception):
    """An error caused by the user's input or environment, not a bug: no traceback is shown."""


class ConfigError(MnistlabError):
    """A bad value in a config, flag or suite file."""


class DataError(MnistlabError):
    """MNIST files missing, corrupted or unobtainable."""


def choices_error(what: str, value: object, choices: "list[str] | tuple[str, ...]") -> ConfigError:
    """The one-line error for a value that is not one of the valid choices."""
    return ConfigError(f"unknown {what} {value!r}; valid choices: {', '.join(sorted(choices))}")
