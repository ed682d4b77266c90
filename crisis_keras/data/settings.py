"""The paper's evaluation settings A, B and C (section 4.2, eq. 11-12).

- A: every split keeps only pairs whose text and image classes agree,
  C(v_i) = C(t_i) (eq. 11).
- B: the training split keeps every pair, C(v_i) != C(t_i) allowed (eq. 12,
  `disagree` marks them; `consistency.make_consistent` is the forced SSE
  transition that trains on them); dev and test are as in A.
- C: train on earlier events, test on a later one of another nature. The
  agreeing pairs of every available split are pooled; test = the pairs of
  `SETTING_C_TEST_EVENT` (California wildfires), train = the pairs of the
  experiment's events (Table 7's three training sets), and, as the paper has
  no dev set here, dev = a seeded `dev_fraction` (15%, section 4.5) of the
  training tweets, held out of train. The dev sample is drawn by tweet id, so
  the images of one tweet never straddle train and dev.

"Agree" compares the classes after the task's label mapping, so e.g. a text
labelled `injured_or_dead_people` and an image labelled
`affected_individuals` agree under the paper's humanitarian classes. Rows
whose pair label the task drops (`label_id == -1`, e.g. `not_humanitarian`
in the paper's set) are dropped in every setting.
"""

from typing import Dict, Mapping

import numpy as np
import pandas as pd

SETTINGS = ("A", "B", "C")
SETTING_C_TEST_EVENT = "california_wildfires"
SETTING_C_EXPERIMENTS = {
    1: ("srilanka_floods",),
    2: ("srilanka_floods", "hurricane_harvey", "hurricane_irma"),
    3: ("srilanka_floods", "hurricane_harvey", "hurricane_irma", "mexico_earthquake"),
}


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["label_id"] >= 0]


def _agreeing(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[(frame["label_id"] >= 0) & ~frame["disagree"]]


def _reset(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.reset_index(drop=True)


def sample_dev_by_tweet(frame: pd.DataFrame, dev_fraction: float, seed: int):
    """Split `frame` into (train, dev) with about `dev_fraction` of its tweets in dev."""
    if not 0.0 < dev_fraction < 1.0:
        raise ValueError(f"dev_fraction must be in (0, 1), got {dev_fraction}.")
    tweet_ids = pd.unique(frame["tweet_id"])
    n_dev = int(round(dev_fraction * len(tweet_ids)))
    rng = np.random.default_rng(seed)
    dev_ids = set(rng.choice(tweet_ids, size=n_dev, replace=False)) if n_dev else set()
    in_dev = frame["tweet_id"].isin(dev_ids)
    return frame[~in_dev], frame[in_dev]


def select_setting(
    frames: Mapping[str, pd.DataFrame],
    task,
    setting: str,
    *,
    experiment: int = 3,
    dev_fraction: float = 0.15,
    seed: int = 0,
) -> Dict[str, pd.DataFrame]:
    """Apply setting A, B or C to raw split tables (from `read_split_file`).

    Args:
        frames: split name -> raw table.
        task: the `Task` the tables were read with (kept for symmetry and
            error messages).
        setting: `"A"`, `"B"` or `"C"`.
        experiment: Setting C's training events, a key of
            `SETTING_C_EXPERIMENTS`.
        dev_fraction, seed: Setting C's held-out dev sample.

    Returns:
        split name -> new table (index reset); inputs are not modified.
    """
    setting = str(setting).upper()
    if setting not in SETTINGS:
        raise ValueError(f"Unknown setting {setting!r}; expected one of {SETTINGS}.")
    if setting == "A":
        return {s: _reset(_agreeing(f)) for s, f in frames.items()}
    if setting == "B":
        return {
            s: _reset(_labelled(f) if s == "train" else _agreeing(f))
            for s, f in frames.items()
        }
    if experiment not in SETTING_C_EXPERIMENTS:
        raise ValueError(
            f"Unknown Setting C experiment {experiment!r}; expected one of "
            f"{sorted(SETTING_C_EXPERIMENTS)}."
        )
    if not frames:
        raise ValueError("Setting C needs at least one split table to pool.")
    pooled = pd.concat([_agreeing(f) for f in frames.values()], ignore_index=True)
    events = SETTING_C_EXPERIMENTS[experiment]
    test = pooled[pooled["event_name"] == SETTING_C_TEST_EVENT]
    train = pooled[pooled["event_name"].isin(events)]
    name = getattr(task, "name", task)
    for split, frame, wanted in (("train", train, events), ("test", test, (SETTING_C_TEST_EVENT,))):
        if frame.empty:
            raise ValueError(
                f"Setting C ({name}, experiment {experiment}): no agreeing pairs of "
                f"event(s) {wanted} for the {split} split; events present: "
                f"{sorted(pd.unique(pooled['event_name']))}."
            )
    train, dev = sample_dev_by_tweet(train, dev_fraction, seed)
    return {"train": _reset(train), "dev": _reset(dev), "test": _reset(test)}
