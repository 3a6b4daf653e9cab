"""Errors the product reports to users: the API turns them into 4xx JSON, the admin into form errors."""


class SignalboxError(Exception):
    """Base error. `field` names the input at fault, when there is one."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(SignalboxError):
    status_code = 404


class Conflict(SignalboxError):
    status_code = 409
