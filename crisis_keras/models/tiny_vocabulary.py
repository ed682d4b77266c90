"""A built-in, deterministic WordPiece vocabulary for the random "tiny" BERT.

Character level with a few hundred whole words, so any lowercase ASCII text
tokenizes without [UNK] and without downloading anything. Order (ids):
0 [PAD], 1 [UNK], 2 [CLS], 3 [SEP], 4 [MASK], then single characters
(a-z, 0-9, punctuation), their "##" continuation pieces, then whole words.
Tokens are unique (`BertTokenizer` requires it).
"""

import string

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

PUNCTUATION = tuple(string.punctuation) + ("\u2019", "\u2018", "\u201c", "\u201d", "\u2026")

# Frequent English words plus crisis-tweet vocabulary (and "link", the
# normalized URL of section 4.5).
WORDS = """
the of and to in is was for on that with as by at it from be this are an or
have has had not but were they which you he she we his her their its our
your them there been one all more will would can if so what when who about
up out into after over new no just like than also other some time people
only do most may first two three years year day days now back get got go
going make made see still any these many before because very where how
here then well even much could should say said help need needs please
pray prayers thank thanks today tonight morning night home city state
area areas country world water food relief aid donate donation donations
support rescue rescued rescuers volunteer volunteers team teams shelter
shelters emergency crisis disaster disasters damage damaged destroyed
destruction flood floods flooding flooded rain storm storms hurricane
harvey irma maria cyclone tornado wind winds earthquake quake tremor
magnitude fire fires wildfire wildfires smoke burn burned burning
evacuate evacuation evacuated victims victim dead death deaths killed
injured missing found family families children child woman women man men
house houses homes building buildings road roads bridge bridges power
electricity car cars vehicle vehicles truck boat boats tree trees
hospital school schools church government police army military red cross
news video photo photos pic image live update updates report reports
affected million thousands hundreds people's safe safety risk warning
alert watch near via amp rt link california mexico texas florida puerto
rico houston miami iraq iran sri lanka keys island islands coast beach
town village street community communities lost lives life hit hits
struck survivors survivor trapped collapsed collapse debris cleanup
recovery rebuild help' fund funds money raise raised give giving
""".split()


def tiny_vocabulary():
    """The vocabulary list (deterministic, unique tokens)."""
    chars = list(string.ascii_lowercase) + list(string.digits)
    tokens = list(SPECIAL_TOKENS) + chars + list(PUNCTUATION)
    tokens += ["##" + c for c in chars + list(PUNCTUATION)]
    tokens += [w for w in WORDS if w.isalpha()]
    seen, unique = set(), []
    for token in tokens:
        if token not in seen:
            seen.add(token)
            unique.append(token)
    return unique
