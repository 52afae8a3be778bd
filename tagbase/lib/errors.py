"""The one shape of a refused request, shared by every app's service errors."""

from __future__ import annotations


class ServiceError(Exception):
    """A write or a request was refused. ``code`` is stable (the API's error code), ``field``
    names the input at fault, ``message`` says what is wrong for a person to read."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code
