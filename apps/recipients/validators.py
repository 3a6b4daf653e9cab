import phonenumbers
from django.core.exceptions import ValidationError


def normalize_phone(value: str) -> str:
    """An international phone number in E.164 form (+14155550123), or ValidationError."""
    if not value:
        return ""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise ValidationError(
            "%(value)s is not a valid phone number in international format (e.g. +14155550123).",
            code="invalid_phone", params={"value": value},
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def validate_phone(value: str) -> None:
    normalize_phone(value)
