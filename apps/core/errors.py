"""Errors the product reports to users: the API turns them into 4xx JSON, the admin into form errors."""


class SignalboxError(Exception):
    """Base error. `fields` maps the JSON path of each input at fault to its messages."""

    status_code = 400
    error_type = "invalid_request"

    def __init__(self, message: str, *, fields: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class InvalidInput(SignalboxError):
    @classmethod
    def field(cls, path: str, message: str) -> "InvalidInput":
        return cls(f"{path}: {message}", fields={path: [message]})


class NotFound(SignalboxError):
    status_code = 404
    error_type = "not_found"


class Conflict(SignalboxError):
    status_code = 409
    error_type = "conflict"
