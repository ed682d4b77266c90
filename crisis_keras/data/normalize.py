"""Tweet normalization (paper, section 4.5) and the reader's mojibake repair.

Section 4.5: "For tweet normalization, we remove double spaces and lower case
all characters. In addition, we replace any link in the tweet with the
sentimental word 'link'." `normalize_tweet` (python) and `normalize_tweet_tf`
(`tf.strings`, usable inside an exported graph) apply the same rules, in
this order:

1. lowercase (full Unicode lowercasing; python's `str.lower` and
   `tf.strings.lower(encoding="utf-8")` agree);
2. a link glued to the preceding character (`floods:https://t.co/x`,
   `&gt;https://...`) is first separated from it by a space; an opening
   bracket or quote right before a link is not "glued";
3. every `http://` / `https://` link, and every `www.` link that starts a
   token (start of text, after whitespace or an opening bracket/quote), is
   replaced by `link`. A link runs to the next whitespace, minus trailing
   punctuation (`.,;:!?)]}>'"` and `… ” ’ »`), so `see https://t.co/x.` ->
   `see link.`; a word containing `www.` (`awww.`) is not a link;
4. every run of whitespace (spaces, tabs, newlines and the Unicode spaces
   listed in `_WHITESPACE`) becomes one space, and the ends are stripped.

Both versions use only regular expressions that mean the same in python's
`re` and in RE2 (explicit character classes, no `\\s`/`\\w`/`\\b`, whose
Unicode meaning differs between the two engines).

`fix_mojibake` undoes the dataset's encoding damage (UTF-8 bytes decoded as
cp1252 or Mac Roman, e.g. `Weâ€™re` -> `We’re`, `‚Ä¶` -> `…`). It is applied
by the python reader only (`crisismmd.read_split_file`), never in-graph:
text that reaches a served model is assumed to be correctly decoded.
"""

import re

# Whitespace, as one explicit set shared by both regex engines.
_WHITESPACE = (
    " \t\n\r\f\v\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
)
# Characters after which a link is not considered glued to a word.
_OPENERS = "([{<\"'\u201c\u2018\u00ab"
# Punctuation that ends a sentence rather than a link.
_TRAILING = ".,;:!?)\\]}>'\"\u2026\u201d\u2019\u00bb"

_BODY = f"(?:[^{_WHITESPACE}]*[^{_WHITESPACE}{_TRAILING}])?"

# (pattern, replacement) pairs applied in order after lowercasing. The
# replacement syntax `\1` is understood by both `re.sub` and RE2.
_RULES = (
    (f"([^{_WHITESPACE}{_OPENERS}])(https?://)", r"\1 \2"),
    (f"https?://{_BODY}", "link"),
    (f"(^|[{_WHITESPACE}{_OPENERS}])www\\.[0-9a-z]{_BODY}", r"\1link"),
    (f"[{_WHITESPACE}]+", " "),
    ("^ | $", ""),
)
_COMPILED = tuple((re.compile(p), r) for p, r in _RULES)

LINK_TOKEN = "link"


def normalize_tweet(text: str) -> str:
    """Normalize one tweet (section 4.5): lowercase, links -> `link`, spaces.

    Args:
        text: the raw tweet text.

    Returns:
        The normalized text; identical to `normalize_tweet_tf` on the same
        string.
    """
    if not isinstance(text, str):
        raise TypeError(f"normalize_tweet expects a str, got {type(text).__name__}.")
    out = text.lower()
    for pattern, replacement in _COMPILED:
        out = pattern.sub(replacement, out)
    return out


def normalize_tweet_tf(text):
    """`normalize_tweet` with `tf.strings` ops (any shape of tf.string).

    Usable inside a `tf.function` / exported serving graph, so a deployed
    model applies exactly the training-time normalization to raw strings.
    """
    import tensorflow as tf  # Lazy: keep `crisis_keras.data` importable without TF.

    out = tf.strings.lower(tf.convert_to_tensor(text, dtype=tf.string), encoding="utf-8")
    for pattern, replacement in _RULES:
        out = tf.strings.regex_replace(out, pattern, replacement, replace_global=True)
    return out


# --- mojibake -------------------------------------------------------------

def _single_byte_table(codec: str) -> dict:
    """char -> byte (>= 0x80) for a single-byte codec; undefined cp1252 bytes
    (0x81, 0x8d, 0x8f, 0x90, 0x9d) map through Latin-1, as lenient decoders do."""
    table = {}
    for byte in range(0x80, 0x100):
        raw = bytes([byte])
        try:
            char = raw.decode(codec)
        except UnicodeDecodeError:
            char = raw.decode("latin-1")
        table.setdefault(char, byte)
    return table


_TABLES = tuple(_single_byte_table(c) for c in ("cp1252", "mac_roman"))


def _utf8_length(lead: int) -> int:
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0


def _decode_at(text: str, i: int, table: dict) -> str:
    """The character whose UTF-8 bytes `table` turned into text[i:...], or ""."""
    lead = table.get(text[i])
    size = _utf8_length(lead) if lead is not None else 0
    if not size or i + size > len(text):
        return ""
    chunk = [table.get(c) for c in text[i : i + size]]
    if any(b is None for b in chunk):
        return ""
    try:
        char = bytes(chunk).decode("utf-8")
    except UnicodeDecodeError:
        return ""
    # A two-byte result must be a Latin letter or symbol (U+00A0..U+024F):
    # this keeps legitimate pairs such as `“É` or `Ñ”` from being "repaired".
    if size == 2 and not "\u00a0" <= char <= "\u024f":
        return ""
    return char


def _repair(text: str) -> str:
    out = []
    i, n = 0, len(text)
    while i < n:
        # Longest valid sequence under either codec; cp1252 wins ties.
        best = max((_decode_at(text, i, t) for t in _TABLES), key=lambda c: len(c.encode()))
        if best:
            out.append(best)
            i += len(best.encode("utf-8"))
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


# A UTF-8 no-break space (C2 A0) whose second byte later became a plain
# space reads `Â ` (cp1252) or `¬ ` (Mac Roman): drop the orphaned lead.
_LOST_NBSP = re.compile("[\u00c2\u00ac](?= )")


def fix_mojibake(text: str) -> str:
    """Undo UTF-8 text that was decoded as cp1252 or as Mac Roman.

    Only complete, valid UTF-8 multi-byte sequences are replaced, so correct
    text (`México`, `’`, emoji) is left alone: a legitimate accented letter
    is never followed by the continuation bytes a UTF-8 sequence needs.
    cp1252 is tried first (`Weâ€™re` -> `We’re`), then Mac Roman
    (`‚Ä¶` -> `…`); at each position the longer valid sequence wins. A
    no-break space that lost its second byte (`Â ` / `¬ `) becomes a plain
    space. Bytes lost upstream (e.g. mangled emoji) cannot be restored and
    are left as they are. Never raises on any string.
    """
    if text.isascii():
        return text
    return _LOST_NBSP.sub("", _repair(text))
