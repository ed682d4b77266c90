"""JSON parsing that refuses what `json.loads` lets through or dies on.

- bytes that are not UTF-8: refused with the byte offset (JSON text is UTF-8);
- a key twice in one object: refused (`json.loads` silently keeps the last);
- nesting deeper than the parser's recursion limit (about 1000 levels):
  refused, instead of the RecursionError `json.loads` raises.
Used by the REST server for request bodies and by `predict` for JSON Lines.
"""

import json


class JSONError(ValueError):
    """Input that is not acceptable JSON; the message says why and where."""


def _no_duplicates(pairs):
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise JSONError(f"duplicate key {key!r} in one JSON object")
        seen.add(key)
    return dict(pairs)


def loads(data, what="the input"):
    """`json.loads(data)` for bytes or str, raising `JSONError` as described above."""
    if isinstance(data, (bytes, bytearray)):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise JSONError(f"{what} is not valid UTF-8 ({err.reason} at byte "
                            f"{err.start})") from None
    try:
        return json.loads(data, object_pairs_hook=_no_duplicates)
    except JSONError as err:
        raise JSONError(f"{what} has a {err}") from None
    except json.JSONDecodeError as err:
        raise JSONError(f"{what} is not valid JSON: {err}") from None
    except RecursionError:
        raise JSONError(f"{what} nests JSON arrays/objects too deeply (the limit is about "
                        "1000 levels)") from None
