"""A small synthetic dataset in the exact CrisisMMD v2.0 layout.

The real CrisisMMD images cannot be downloaded here, so the demo stands in for
them: `make_demo_data(root)` writes `root/crisismmd_datasplit_all/
task_{informative,humanitarian,damage}_text_img_{train,dev,test}.tsv` (the real
columns, tab-separated, header line, LF) and `root/data_image/<event>/
<d_m_yyyy>/<image_id>.jpg`, so `crisismmd.load_crisismmd(root, task)` reads it
like the real dataset, in every setting (A, B and C, section 4.2).

Signal: in the informative and humanitarian tasks each image shows its
class colour and a class pattern (stripes, checkerboard, rings, dots) under
shading, a random occluding box and noise, and each tweet carries keywords of
its text class. Severity (the quick start's task) needs both modalities: its
tweets tell damage (severe, mild) from none (little_or_no_damage) by whole
words of the tiny BERT's vocabulary, its images severe damage (a dark, warm
tone over the whole frame) from the rest (a bright, cool one), so each
modality alone can reach about 70% accuracy and only the two together decide
the label. A few images are grayscale (colour lost, brightness kept) or PNG
files named `.jpg` (as in CrisisMMD). Tweets mix the keywords with
distractors, hashtags, links, mixed case, double spaces, `&amp;` and mojibake
(`Weâ€™re`); ~15% carry a keyword of another group. In the
informative and humanitarian tasks ~20% of pairs disagree (`label_text !=
label_image`, `label_text_image` Negative, `label` one of the two at random,
as in CrisisMMD); humanitarian includes the fine labels (injured/dead,
missing/found) and `not_humanitarian` rows. The three tasks use independent
tweets. Seven events, including California wildfires (Setting C's test
event) and the training events of Setting C's three experiments.

The output is byte-identical for a given seed and sizes with the same
numpy/Pillow build (fixed JPEG quality, no timestamps or metadata);
`MANIFEST.sha256` lists every file's hash. Bump `DEMO_VERSION` whenever the
output changes: the cached demo lives in `crisismmd_demo_v<DEMO_VERSION>`, so
`ensure_demo_data` then generates a new one instead of reusing an old cache.
Version 2: severity's text and image signals (above); version 1 had no text
signal for severity.
"""

import colorsys
import datetime
import hashlib
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

DEMO_VERSION = 2
DEFAULT_SIZES = {"train": 256, "dev": 64, "test": 64}
SPLIT_DIR = "crisismmd_datasplit_all"
IMAGE_DIR = "data_image"
MANIFEST = "MANIFEST.sha256"
JPEG_QUALITY = 90

EVENTS = (
    ("california_wildfires", datetime.date(2017, 10, 9)),
    ("srilanka_floods", datetime.date(2017, 5, 26)),
    ("hurricane_harvey", datetime.date(2017, 8, 26)),
    ("hurricane_irma", datetime.date(2017, 9, 6)),
    ("mexico_earthquake", datetime.date(2017, 9, 20)),
    ("hurricane_maria", datetime.date(2017, 9, 20)),
    ("iraq_iran_earthquake", datetime.date(2017, 11, 13)),
)
_EVENT_TAGS = {
    "california_wildfires": ("#CaliforniaWildfires", "Napa", "Santa Rosa", "#wildfire"),
    "srilanka_floods": ("#SriLanka", "#floods", "Colombo", "monsoon"),
    "hurricane_harvey": ("#Harvey", "Houston", "#HurricaneHarvey", "Texas"),
    "hurricane_irma": ("#Irma", "Florida", "#HurricaneIrma", "Keys"),
    "mexico_earthquake": ("#sismo", "Mexico City", "#MexicoEarthquake", "Puebla"),
    "hurricane_maria": ("#Maria", "Puerto Rico", "#HurricaneMaria", "San Juan"),
    "iraq_iran_earthquake": ("#earthquake", "Kermanshah", "#Iraq", "#Iran"),
}
_DISTRACTORS = (
    "today", "please", "share", "news", "people", "photo", "via", "city",
    "breaking", "now", "here", "look", "this", "our", "after", "storm", "week",
)
_INFORMATIVE_WORDS = (
    "damage", "destroyed", "rescue", "evacuate", "flooding", "shelter",
    "injured", "relief", "collapsed", "emergency",
)
_CHATTER_WORDS = (
    "lol", "selfie", "music", "concert", "giveaway", "recipe", "birthday",
    "fashion", "movie", "vibes",
)
_AFFECTED_WORDS = ("displaced families", "evacuees", "death toll", "missing people", "survivors")
# Severity's two text groups: plain words that a pretrained BERT tells apart
# at once, and whole words of the tiny BERT's vocabulary (one token each, its
# best chance; at random initialization its [CLS] output hardly depends on the
# tweet, so it still learns nothing in the quick start's 3 epochs, see README).
_DAMAGE_WORDS = ("damage", "damaged", "destroyed", "destruction", "collapsed", "debris")
_SAFE_WORDS = ("safe", "safety", "thanks", "thank", "well")



# Per task: file stem, raw labels with their share of pairs, the signal group
# of each raw label (labels the task merges share their colour and keywords),
# the fraction of disagreeing pairs and whether the text carries the label.
_TASKS = {
    "informative": dict(
        stem="informative",
        labels=(("informative", 0.6), ("not_informative", 0.4)),
        groups={"informative": 0, "not_informative": 1},
        keywords=(_INFORMATIVE_WORDS, _CHATTER_WORDS),
        disagree=0.2,
        text_signal=1.0,
    ),
    "humanitarian": dict(
        stem="humanitarian",
        labels=(
            ("infrastructure_and_utility_damage", 0.2),
            ("vehicle_damage", 0.12),
            ("rescue_volunteering_or_donation_effort", 0.2),
            ("affected_individuals", 0.08),
            ("injured_or_dead_people", 0.05),
            ("missing_or_found_people", 0.03),
            ("other_relevant_information", 0.22),
            ("not_humanitarian", 0.1),
        ),
        groups={
            "infrastructure_and_utility_damage": 0,
            "vehicle_damage": 1,
            "rescue_volunteering_or_donation_effort": 2,
            "affected_individuals": 3,
            "injured_or_dead_people": 3,
            "missing_or_found_people": 3,
            "other_relevant_information": 4,
            "not_humanitarian": 5,
        },
        keywords=(
            (
                "bridge collapsed", "roads destroyed", "power lines down",
                "building damaged", "infrastructure",
            ),
            ("cars flooded", "vehicles crushed", "truck overturned", "car wreck", "submerged cars"),
            ("volunteers", "donate", "rescue teams", "relief supplies", "fundraiser"),
            _AFFECTED_WORDS,
            ("forecast", "satellite map", "update", "warning issued", "live coverage"),
            _CHATTER_WORDS,
        ),
        disagree=0.2,
        text_signal=1.0,
    ),
    "severity": dict(
        stem="damage",
        labels=(("severe_damage", 0.35), ("mild_damage", 0.3), ("little_or_no_damage", 0.35)),
        # Neither modality decides the label alone (see the module docstring): the
        # text tells damage from no damage, the image severe from the rest.
        groups={"severe_damage": 0, "mild_damage": 1, "little_or_no_damage": 2},
        text_groups={"severe_damage": 0, "mild_damage": 0, "little_or_no_damage": 1},
        image_groups={"severe_damage": 0, "mild_damage": 1, "little_or_no_damage": 1},
        keywords=(_DAMAGE_WORDS, _SAFE_WORDS),
        image_style="tone",
        disagree=0.0,  # damage labels annotate the pair as one
        text_signal=0.95,
    ),
}
DEMO_TASKS = tuple(_TASKS)
_FULL_COLUMNS = (
    "event_name", "tweet_id", "image_id", "tweet_text", "image",
    "label", "label_text", "label_image", "label_text_image",
)
_DAMAGE_COLUMNS = _FULL_COLUMNS[:6]
_IMAGE_SIZES = ((256, 192), (192, 256), (200, 300), (300, 200), (240, 240), (320, 180))


def default_demo_dir() -> Path:
    """Where `ensure_demo_data` keeps the demo: `$CRISIS_KERAS_HOME` (default
    `~/.cache/crisis_keras`) / `crisismmd_demo_v<DEMO_VERSION>`."""
    home = os.environ.get("CRISIS_KERAS_HOME") or os.path.join("~", ".cache", "crisis_keras")
    return Path(home).expanduser() / f"crisismmd_demo_v{DEMO_VERSION}"


def _quotas(weights: Sequence[float], total: int) -> List[int]:
    """Largest-remainder split of `total` by `weights` (at least 1 each if possible)."""
    w = np.asarray(weights, dtype=np.float64)
    raw = w / w.sum() * total
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    for i in range(len(counts)):  # every label present when total allows
        if counts[i] == 0 and total >= len(counts):
            counts[int(np.argmax(counts))] -= 1
            counts[i] = 1
    return counts.tolist()


def _class_colour(group: int, num_groups: int, task_index: int) -> np.ndarray:
    hue = (group / num_groups + 0.11 * task_index) % 1.0
    return np.array(colorsys.hsv_to_rgb(hue, 0.75, 0.85)) * 255.0


def _make_image(rng: np.random.Generator, group: int, num_groups: int, task_index: int):
    """uint8 `[H, W, 3]`: class colour + class pattern, shading, a box, noise."""
    width, height = _IMAGE_SIZES[rng.integers(len(_IMAGE_SIZES))]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    period = rng.uniform(10.0, 22.0)
    phase = rng.uniform(0, 2 * np.pi)
    kind = group % 5
    if kind == 0:  # horizontal stripes
        pattern = np.sin(2 * np.pi * yy / period + phase)
    elif kind == 1:  # vertical stripes
        pattern = np.sin(2 * np.pi * xx / period + phase)
    elif kind == 2:  # checkerboard
        pattern = np.sign(np.sin(2 * np.pi * xx / period + phase) * np.sin(2 * np.pi * yy / period))
    elif kind == 3:  # rings
        cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
        pattern = np.sin(2 * np.pi * np.hypot(yy - cy, xx - cx) / period + phase)
    else:  # dots
        dots = np.cos(2 * np.pi * xx / period + phase) * np.cos(2 * np.pi * yy / period)
        pattern = np.where(dots > 0.5, 1.0, -0.6)
    colour = _class_colour(group, num_groups, task_index) + rng.normal(0, 12, 3)
    shading = rng.uniform(-30, 30) * (xx / width - 0.5) + rng.uniform(-30, 30) * (yy / height - 0.5)
    image = colour[None, None, :] + (40.0 * pattern + shading)[..., None]
    if rng.random() < 0.5:  # an occluding box of a random colour
        bh, bw = int(height * rng.uniform(0.2, 0.45)), int(width * rng.uniform(0.2, 0.45))
        top, left = rng.integers(0, height - bh), rng.integers(0, width - bw)
        image[top : top + bh, left : left + bw] = rng.uniform(0, 255, 3)
    image += rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


# Severity's two image groups: a dark, warm scene (smoke, rubble) and a
# bright, cool one, as (hue, saturation, value).
_TONES = ((0.07, 0.65, 0.36), (0.55, 0.40, 0.84))


def _make_tone_image(rng: np.random.Generator, group: int):
    """uint8 `[H, W, 3]`: the group's tone over the whole frame (so any
    position of a feature map carries it), under a pattern, shading, a box
    and noise drawn the same way for every group."""
    width, height = _IMAGE_SIZES[rng.integers(len(_IMAGE_SIZES))]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    hue, sat, val = _TONES[group]
    hue = (hue + rng.uniform(-0.03, 0.03)) % 1.0
    sat = float(np.clip(sat + rng.uniform(-0.08, 0.08), 0.0, 1.0))
    val = float(np.clip(val + rng.uniform(-0.06, 0.06), 0.0, 1.0))
    colour = np.array(colorsys.hsv_to_rgb(hue, sat, val)) * 255.0
    period = rng.uniform(10.0, 22.0)
    phase = rng.uniform(0, 2 * np.pi)
    kind = int(rng.integers(3))
    if kind == 0:
        pattern = np.sin(2 * np.pi * yy / period + phase)
    elif kind == 1:
        pattern = np.sin(2 * np.pi * xx / period + phase)
    else:
        pattern = np.sign(np.sin(2 * np.pi * xx / period + phase) * np.sin(2 * np.pi * yy / period))
    shading = rng.uniform(-20, 20) * (xx / width - 0.5) + rng.uniform(-20, 20) * (yy / height - 0.5)
    image = colour[None, None, :] + (18.0 * pattern + shading)[..., None]
    if rng.random() < 0.3:  # an occluding box of a random colour
        bh, bw = int(height * rng.uniform(0.15, 0.35)), int(width * rng.uniform(0.15, 0.35))
        top, left = rng.integers(0, height - bh), rng.integers(0, width - bw)
        image[top : top + bh, left : left + bw] = rng.uniform(0, 255, 3)
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _encode(rng: np.random.Generator, pixels: np.ndarray) -> bytes:
    """JPEG bytes; some grayscale JPEGs and PNGs (a few with alpha), all for `.jpg`."""
    buf = io.BytesIO()
    u = rng.random()
    image = Image.fromarray(pixels, "RGB")
    if u < 0.04:
        image.convert("L").save(buf, format="JPEG", quality=JPEG_QUALITY)
    elif u < 0.07:
        alpha = np.linspace(255, 128, pixels.shape[1], dtype=np.uint8)
        rgba = np.dstack([pixels, np.broadcast_to(alpha, pixels.shape[:2])])
        Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    elif u < 0.09:
        image.save(buf, format="PNG")
    else:
        image.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def _link(rng: np.random.Generator) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    code = "".join(alphabet[i] for i in rng.integers(0, len(alphabet), 10))
    return f"https://t.co/{code}" if rng.random() < 0.9 else f"www.example.org/{code[:6]}"


def _recase(rng: np.random.Generator, word: str) -> str:
    u = rng.random()
    return word.upper() if u < 0.12 else word.title() if u < 0.35 else word


def _make_text(rng, spec, group: Optional[int], event: str) -> str:
    """A tweet: class keywords among distractors, tags, links and noise."""
    keywords = spec["keywords"]
    words = list(rng.choice(_DISTRACTORS, size=rng.integers(3, 8)))
    words.append(str(rng.choice(_EVENT_TAGS[event])))
    if group is not None and rng.random() < spec["text_signal"]:
        words += list(rng.choice(keywords[group], size=rng.integers(1, 3), replace=False))
    if rng.random() < 0.15:  # a keyword of another class
        other = int(rng.integers(len(keywords)))
        words.append(str(rng.choice(keywords[other])))
    words = [_recase(rng, w) for w in rng.permutation(words)]
    if rng.random() < 0.08:
        words.insert(0, "Weâ€™re" if rng.random() < 0.5 else "Itâ€™s")
    if rng.random() < 0.08:
        words.insert(int(rng.integers(len(words) + 1)), "&amp;")
    if rng.random() < 0.05:
        words[-1] = f'"{words[-1]}"'
    if rng.random() < 0.3:
        words.insert(0, f"RT @user{int(rng.integers(1000))}:")
    text = ""
    for i, word in enumerate(words):
        if i:
            u = rng.random()  # double spaces; mojibake no-break space (as in CrisisMMD)
            text += "  " if u < 0.12 else "Â\u00a0" if u < 0.15 else " "
        text += word
    for _ in range(int(rng.integers(0, 3))):
        text += " " + _link(rng)
    return text


def _tsv_field(value: str) -> str:
    if any(c in value for c in "\t\n\r"):
        raise ValueError(f"Demo field holds a tab or newline: {value!r}")
    if '"' in value:  # CSV-style quoting, as in CrisisMMD's pandas-written files
        return '"' + value.replace('"', '""') + '"'
    return value


def _split_pairs(rng, spec, size: int) -> List[Tuple[str, str, str]]:
    """`(label, label_text, label_image)` for one split, by quota."""
    names = [name for name, _ in spec["labels"]]
    counts = _quotas([w for _, w in spec["labels"]], size)
    pairs = []
    for name, count in zip(names, counts):
        for _ in range(count):
            if rng.random() < spec["disagree"]:
                other = str(rng.choice([n for n in names if n != name]))
                text_side, image_side = (name, other) if rng.random() < 0.5 else (other, name)
                pairs.append((name, text_side, image_side))
            else:
                pairs.append((name, name, name))
    return pairs


def _write_task(task: str, task_index: int, seed: int, sizes: Mapping[str, int], files: Dict):
    """Add one task's TSVs and images to `files` (relative path -> bytes)."""
    spec = _TASKS[task]
    text_groups = spec.get("text_groups", spec["groups"])
    image_groups = spec.get("image_groups", spec["groups"])
    num_groups = max(image_groups.values()) + 1
    rng = np.random.default_rng([seed, task_index])
    image_only = spec["disagree"] == 0.0
    tweet_id = 910_000_000_000_000_000 + task_index * 10**16
    event_counter: Dict[str, int] = {}
    serial = 0
    for split, size in sizes.items():
        if size <= 0:
            continue
        pairs = _split_pairs(rng, spec, size)
        by_text: Dict[str, List[Tuple[str, str, str]]] = {}
        for pair in pairs:
            by_text.setdefault(pair[1], []).append(pair)
        tweets = []  # (label_text, [pairs]): some tweets carry two images
        for label_text, group in by_text.items():
            i = 0
            while i < len(group):
                take = 2 if i + 1 < len(group) and rng.random() < 0.25 else 1
                tweets.append((label_text, group[i : i + take]))
                i += take
        rows = []
        for t in rng.permutation(len(tweets)):
            label_text, tweet_pairs = tweets[int(t)]
            k = event_counter.get(label_text, 0)
            event_counter[label_text] = k + 1
            event, start = EVENTS[k % len(EVENTS)]
            day = start + datetime.timedelta(days=int(rng.integers(0, 14)))
            tweet_id += int(rng.integers(10**6, 10**9))
            text_group = text_groups[label_text]
            text = _make_text(rng, spec, text_group, event)
            for j, (label, l_text, l_image) in enumerate(tweet_pairs):
                image_id = f"{tweet_id}_{j}"
                rel = f"{IMAGE_DIR}/{event}/{day.day}_{day.month}_{day.year}/{image_id}.jpg"
                img_rng = np.random.default_rng([seed, task_index, serial])
                serial += 1
                if spec.get("image_style") == "tone":
                    pixels = _make_tone_image(img_rng, image_groups[l_image])
                else:
                    pixels = _make_image(img_rng, image_groups[l_image], num_groups, task_index)
                files[rel] = _encode(img_rng, pixels)
                row = [event, str(tweet_id), image_id, _tsv_field(text), rel, label]
                if not image_only:
                    agree = "Positive" if l_text == l_image else "Negative"
                    row += [l_text, l_image, agree]
                rows.append("\t".join(row))
        header = "\t".join(_DAMAGE_COLUMNS if image_only else _FULL_COLUMNS)
        name = f"{SPLIT_DIR}/task_{spec['stem']}_text_img_{split}.tsv"
        files[name] = ("\n".join([header] + rows) + "\n").encode("utf-8")


def make_demo_data(root, *, seed: int = 0, sizes: Optional[Mapping[str, int]] = None) -> Path:
    """Write the demo dataset under `root` (CrisisMMD layout); returns `root`.

    Args:
        root: dataset root to create (`crisismmd_datasplit_all/`,
            `data_image/`, `MANIFEST.sha256`).
        seed: the same seed and sizes give byte-identical files.
        sizes: pairs (TSV rows) per split for each task, default
            `{"train": 256, "dev": 64, "test": 64}`; a split absent or 0 is not
            written.
    """
    sizes = dict(DEFAULT_SIZES if sizes is None else sizes)
    root = Path(root)
    files: Dict[str, bytes] = {}
    for task_index, task in enumerate(DEMO_TASKS):
        _write_task(task, task_index, seed, sizes, files)
    lines = []
    for rel in sorted(files):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[rel])
        lines.append(f"{hashlib.sha256(files[rel]).hexdigest()}  {rel}\n")
    (root / MANIFEST).write_text("".join(lines), encoding="utf-8")
    return root


def ensure_demo_data(root=None) -> Path:
    """The default demo dataset, generated on first use; returns its root.

    Generation goes to a temporary sibling directory that is renamed into
    place when complete, so a crash or a concurrent caller never sees a
    partial dataset. `root` defaults to `default_demo_dir()`.
    """
    root = Path(root) if root is not None else default_demo_dir()
    if (root / MANIFEST).is_file():
        return root
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(
            f"{root} exists but holds no {MANIFEST}: not a demo dataset; remove it "
            "or choose another CRISIS_KERAS_HOME."
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        make_demo_data(tmp)
        if root.exists():
            root.rmdir()  # empty (checked above)
        os.rename(tmp, root)
    except OSError:
        if not (root / MANIFEST).is_file():  # not a lost race: a real error
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root
