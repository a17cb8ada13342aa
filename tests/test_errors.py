"""dpcore.errors: user errors name their field, and any exception reads as one line for a person."""

from __future__ import annotations

from dpcore.errors import MAX_ERROR_CHARS, ConfigError, describe_exception


def test_a_user_error_names_the_field_and_what_is_allowed():
    error = ConfigError("epochs", "0 is out of range", allowed="1 to 1000")
    assert str(error) == "epochs: 0 is out of range (allowed: 1 to 1000)"
    assert describe_exception(error) == str(error)


def test_wrapped_errors_read_as_their_telling_line():
    wrapped = RuntimeError('Graph execution error:\n\n  File "x.py", line 3, in f\nInvalidArgumentError: bad shape\n')
    assert describe_exception(wrapped) == "InvalidArgumentError: bad shape"
    assert describe_exception(RuntimeError("kernel failed\n" + "details\n" * 50)) == "RuntimeError: kernel failed"
    assert describe_exception(KeyError()) == "KeyError"


def test_memory_and_long_messages():
    assert describe_exception(MemoryError()).startswith("out of memory:")
    long = describe_exception(OSError("x" * 2000))
    assert len(long) == MAX_ERROR_CHARS and long.endswith("…")
