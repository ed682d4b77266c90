"""A tweet's text as the model takes it: UTF-8 bytes, of bounded length.

The exported model's tokenizer accepts any bytes (invalid UTF-8 included)
and silently classifies garbage, so text is checked before it reaches the
graph: valid UTF-8 (no lone surrogates either, which JSON's `\\ud800`
escapes can carry) and at most `max_chars` characters.
"""


class TextRejected(ValueError):
    """Text that is not valid UTF-8."""


class TextTooLong(ValueError):
    """Text above the length limit."""


def check_text(value, max_chars: int) -> bytes:
    """`value` (str or bytes) as UTF-8 bytes, or raises `TextRejected` / `TextTooLong`."""
    if isinstance(value, (bytes, bytearray)):
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError as err:
            raise TextRejected(f"is not valid UTF-8 ({err.reason} at byte {err.start})") from None
    else:
        text = value
    if len(text) > max_chars:
        raise TextTooLong(f"has {len(text):,} characters, above the limit of {max_chars:,} "
                          "(--max-text-chars)")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise TextRejected(f"is not valid Unicode ({err.reason} at character {err.start})") \
            from None
