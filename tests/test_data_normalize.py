"""Tweet normalization (section 4.5) and mojibake repair."""

import pytest

from crisis_keras.data.normalize import fix_mojibake
from crisis_keras.data.normalize import normalize_tweet

CASES = [
    ("Hello  World", "hello world"),
    ("  leading and trailing  ", "leading and trailing"),
    ("tabs\tand\nnewlines", "tabs and newlines"),
    ("see https://t.co/AbC123xyZ", "see link"),
    ("see http://example.com/a?b=1&c=2 now", "see link now"),
    ("HTTPS://T.CO/ABC", "link"),
    ("end of sentence https://t.co/x.", "end of sentence link."),
    ("list https://t.co/a, https://t.co/b; done", "list link, link; done"),
    ("(https://t.co/abc)", "(link)"),
    ("truncated https://t.co/abc…", "truncated link…"),
    ("glued:https://t.co/x", "glued: link"),
    ("floodshttps://t.co/x", "floods link"),
    ("visit www.Example.com/page!", "visit link!"),
    ("\"www.foo.org\"", "\"link\""),
    ("awww.. so cute", "awww.. so cute"),
    ("two  links https://a.b  https://c.d", "two links link link"),
]


@pytest.mark.parametrize("raw, expected", CASES)
def test_normalize_rules(raw, expected):
    assert normalize_tweet(raw) == expected


def test_normalize_is_idempotent():
    for raw, _ in CASES:
        once = normalize_tweet(raw)
        assert normalize_tweet(once) == once


def test_normalize_rejects_non_strings():
    with pytest.raises(TypeError, match="expects a str"):
        normalize_tweet(None)


AGREEMENT = [raw for raw, _ in CASES] + [
    "RT @Cal_OES: PLS SHARE: We’re capturing info: https://t.co/r89LKpjLPj https://t.co/HiA1oQF2Ax",
    "MÉXICO  ÑANDÚ Ünïcödé",
    "ΣΑΣ ΟΔΟΣ final sigma",
    "İstanbul STRASSE ẞ",
    "emoji 🌊🔥 HERE➡️https://t.co/x",
    "no\u00a0break\u2009thin\u3000ideographic spaces",
    "arabic زلزله https://t.co/q",
    "t;&gt;https://x.y/z",
    "www.",
    "http://",
    "",
    "   ",
    "Cyrillic ПОМОЩЬ www.site.ru/путь",
    "«https://t.co/a»",
    "“www.quoted.com”",
    "a\u2028b\u2029c",
]


def test_python_and_tf_agree():
    tf = pytest.importorskip("tensorflow")
    from crisis_keras.data.normalize import normalize_tweet_tf

    got = normalize_tweet_tf(tf.constant(AGREEMENT)).numpy()
    assert [g.decode("utf-8") for g in got] == [normalize_tweet(s) for s in AGREEMENT]
    assert len(AGREEMENT) >= 30


def test_tf_version_works_in_graph_and_on_scalars():
    tf = pytest.importorskip("tensorflow")
    from crisis_keras.data.normalize import normalize_tweet_tf

    fn = tf.function(normalize_tweet_tf, input_signature=[tf.TensorSpec([None], tf.string)])
    out = fn(tf.constant(["A  https://t.co/x B"])).numpy()
    assert out[0].decode() == "a link b"
    assert normalize_tweet_tf("X  Y").numpy().decode() == "x y"


@pytest.mark.parametrize(
    "broken, fixed",
    [
        ("Weâ€™re here", "We’re here"),          # cp1252
        ("wait‚Ä¶ what", "wait… what"),          # Mac Roman
        ("cafÃ© and caf√©", "café and café"),
        ("laugh ðŸ˜‚", "laugh 😂"),
        ("love â\x9d¤ï¸\x8f", "love ❤️"),         # undefined cp1252 bytes via Latin-1
        ("SriÂ Lanka", "Sri Lanka"),              # NBSP whose second byte was lost
    ],
)
def test_fix_mojibake(broken, fixed):
    assert fix_mojibake(broken) == fixed


@pytest.mark.parametrize(
    "clean", ["México", "We’re", "“Ésta” es", "«ESPAÑA»", "naïve café 😂", "plain ascii", "Â"]
)
def test_fix_mojibake_leaves_clean_text(clean):
    assert fix_mojibake(clean) == clean
