"""Error types for mistakes a person can make; each names the field and what is allowed."""

from __future__ import annotations

import re

# A run's error message is kept to one line of at most this many characters.
MAX_ERROR_CHARS = 500


class UserInputError(ValueError):
    """A value a person supplied is not allowed; ``field`` names it, ``allowed`` says what is."""

    # Declared only (no class default): set on a refusal raised inside tf.function, whose autograph
    # checks hasattr(error, "ag_pass_through") and then re-raises the error as itself.
    ag_pass_through: bool

    def __init__(self, field: str, message: str, *, allowed: str = "") -> None:
        self.field = field
        self.message = message
        self.allowed = allowed
        text = f"{field}: {message}"
        if allowed:
            text += f" (allowed: {allowed})"
        super().__init__(text)


class ConfigError(UserInputError):
    """A DPConfig field (or a config file) holds a value outside its allowed range."""


class DatasetError(UserInputError):
    """A dataset cannot be loaded or does not fit the requested model."""


_RAISED_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception): \S")


def describe_exception(exc: BaseException) -> str:
    """One readable line for a person: a user error's own message, else the type and the telling line.

    TensorFlow wraps errors in tracebacks ("in user code:", "Graph execution error:"); the line that
    says what went wrong is the original "SomeError: message" line or the first plain sentence.
    """
    if isinstance(exc, MemoryError):
        return "out of memory: " + (str(exc) or "the run needed more memory than is available")
    lines = [line.strip() for line in str(exc).splitlines()]
    raised = [line for line in lines if _RAISED_LINE.match(line)]
    plain = [
        line
        for line in str(exc).splitlines()
        if line.strip() and not line[0].isspace() and not line.rstrip().endswith(":")
    ]
    if raised:
        text = raised[-1]
    else:
        text = plain[0].strip() if plain else next((line for line in lines if line), "")
        if not isinstance(exc, ValueError) or not text:
            text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
