"""Encryption at rest for secrets in the database (provider credentials).

Keys come from SIGNALBOX_ENCRYPTION_KEYS (comma-separated Fernet keys, newest first, so old
keys can still decrypt during a rotation); without it, one key is derived from SECRET_KEY.
https://cryptography.io/en/latest/fernet/#cryptography.fernet.MultiFernet
"""

import base64
import json
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


@cache
def _fernet() -> MultiFernet:
    keys = list(settings.SIGNALBOX_ENCRYPTION_KEYS)
    if not keys:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                       info=b"signalbox-credentials").derive(settings.SECRET_KEY.encode())
        keys = [base64.urlsafe_b64encode(derived).decode()]
    return MultiFernet([Fernet(key) for key in keys])


def encrypt_json(value: dict) -> str:
    return _fernet().encrypt(json.dumps(value).encode()).decode()


def decrypt_json(token: str) -> dict:
    if not token:
        return {}
    try:
        return json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken:
        raise ValueError("cannot decrypt: was SECRET_KEY or SIGNALBOX_ENCRYPTION_KEYS changed?") from None
