from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from apps.core.parsing import json_loads


class JSONParser(BaseParser):
    """DRF's JSON parser, minus NUL characters (see apps.core.parsing.json_loads)."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return json_loads(stream.read() if stream else b"")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
