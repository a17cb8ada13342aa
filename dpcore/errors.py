"""Error types for mistakes a person can make; each names the field and what is allowed."""
from __future__ import annotations


class UserInputError(ValueError):
    """A value a person supplied is not allowed; ``field`` names it, ``allowed`` says what is."""

    def __init__(self, field: str, message: str, *, allowed: str = "") -> None:
        self.field = field
        self.allowed = allowed
        text = f"{field}: {message}"
        if allowed:
            text += f" (allowed: {allowed})"
        super().__init__(text)


class ConfigError(UserInputError):
    """A DPConfig field (or a config file) holds a value outside its allowed range."""


class DatasetError(UserInputError):
    """A dataset cannot be loaded or does not fit the requested model."""
