"""The paper's evaluation settings A, B and C (section 4.2, eq. 11-12).

- A: every split keeps only pairs whose text and image classes agree,
  C(v_i) = C(t_i) (eq. 11).
- B: the training split keeps every pair, C(v_i) != C(t_i) allowed (eq. 12,
  `disagree` marks them; `consistency.make_consistent` is the forced SSE
  transition that trains on them); dev and test are as in A.
- C: train on earlier events, test on a later one of another nature. Every
  available split is pooled; test = the agreeing pairs (eq. 11, as in A and
  B) of `SETTING_C_TEST_EVENT` (California wildfires), train = the pairs of
  the experiment's events (Table 7's three training sets) that the reading
  keeps, and, as the paper has no dev set here, dev = the agreeing pairs of a
  seeded `dev_fraction` (15%, section 4.5) of the training tweets, held out
  of train. The dev sample is drawn by tweet id, so the images of one tweet
  never straddle train and dev.

Setting C's readings (`setting_c_reading`; the paper does not say which
pairs it trains on, and Table 2's 174 / 4,037 / 4,761 training pairs match
none of them on the data here, see data/README.md):
- "agreeing" (default): agreeing pairs only, as Setting A.
- "all_pairs": every labelled pair, disagreeing ones included, as Setting
  B's training (the trainer makes them consistent, SSE with p0 = 1).
- "agreeing_by_tweet": agreement judged per tweet: every labelled pair of a
  tweet with at least one agreeing pair.
`setting_c_counts` gives every reading's counts, before and after the
15% hold-out, in pairs and in tweets.

"Agree" compares the classes after the task's label mapping, so e.g. a text
labelled `injured_or_dead_people` and an image labelled
`affected_individuals` agree under the paper's humanitarian classes. Rows
whose pair label the task drops (`label_id == -1`, e.g. `not_humanitarian`
in the paper's set) are dropped in every setting.
"""

from typing import Dict, Mapping

import numpy as np
import pandas as pd

from crisis_keras.data.table2 import PAPER_SETTING_C_TEST
from crisis_keras.data.table2 import PAPER_SETTING_C_TRAIN

SETTINGS = ("A", "B", "C")
SETTING_C_READINGS = ("agreeing", "all_pairs", "agreeing_by_tweet")
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


def _agreeing_by_tweet(frame: pd.DataFrame) -> pd.DataFrame:
    labelled = _labelled(frame)
    keep = (~labelled["disagree"]).groupby(labelled["tweet_id"]).transform("any")
    return labelled[keep.astype(bool)]


_SETTING_C_POOLS = {
    "agreeing": _agreeing,
    "all_pairs": _labelled,
    "agreeing_by_tweet": _agreeing_by_tweet,
}


def _check_reading(reading: str) -> str:
    if reading not in SETTING_C_READINGS:
        raise ValueError(
            f"Unknown Setting C reading {reading!r}; expected one of {SETTING_C_READINGS}."
        )
    return reading


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
    setting_c_reading: str = "agreeing",
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
        setting_c_reading: which training pairs Setting C keeps, one of
            `SETTING_C_READINGS` (module docstring).

    Returns:
        split name -> new table (index reset); inputs are not modified.
    """
    setting = str(setting).upper()
    if setting not in SETTINGS:
        raise ValueError(f"Unknown setting {setting!r}; expected one of {SETTINGS}.")
    _check_reading(setting_c_reading)
    if setting == "A":
        return {s: _reset(_agreeing(f)) for s, f in frames.items()}
    if setting == "B":
        return {
            s: _reset(_labelled(f) if s == "train" else _agreeing(f))
            for s, f in frames.items()
        }
    pool, test = setting_c_pool(frames, task, experiment, setting_c_reading)
    train, dev = sample_dev_by_tweet(pool, dev_fraction, seed)
    return {"train": _reset(train), "dev": _reset(_agreeing(dev)), "test": _reset(test)}


def setting_c_pool(frames: Mapping[str, pd.DataFrame], task, experiment: int = 3,
                   reading: str = "agreeing"):
    """(training pool before the dev hold-out, test) of a Setting C experiment."""
    _check_reading(reading)
    if experiment not in SETTING_C_EXPERIMENTS:
        raise ValueError(
            f"Unknown Setting C experiment {experiment!r}; expected one of "
            f"{sorted(SETTING_C_EXPERIMENTS)}."
        )
    if not frames:
        raise ValueError("Setting C needs at least one split table to pool.")
    pooled = pd.concat(list(frames.values()), ignore_index=True)
    events = SETTING_C_EXPERIMENTS[experiment]
    test = _agreeing(pooled[pooled["event_name"] == SETTING_C_TEST_EVENT])
    train = _SETTING_C_POOLS[reading](pooled[pooled["event_name"].isin(events)])
    name = getattr(task, "name", task)
    what = "agreeing pairs" if reading == "agreeing" else f"pairs (reading {reading!r})"
    for split, frame, wanted, kind in (("train", train, events, what),
                                       ("test", test, (SETTING_C_TEST_EVENT,), "agreeing pairs")):
        if frame.empty:
            raise ValueError(
                f"Setting C ({name}, experiment {experiment}): no {kind} of "
                f"event(s) {wanted} for the {split} split; events present: "
                f"{sorted(pd.unique(pooled['event_name']))}."
            )
    return train, test


def setting_c_counts(frames: Mapping[str, pd.DataFrame], task, *,
                     dev_fraction: float = 0.15, seed: int = 0) -> Dict[str, Dict[int, dict]]:
    """Table 2's Setting C rows under every reading, beside the paper's.

    Returns `{reading: {experiment: counts}}`; counts are `pool` (training
    pairs before the 15% hold-out), `pool_tweets`, `pool_events` (pairs per
    event), `train` / `dev` (after
    it), `test`, and `paper_train`, `paper_test` (Table 2 as printed), or
    `error` when the data lack the experiment's events.
    """
    result = {}
    for reading in SETTING_C_READINGS:
        result[reading] = {}
        for experiment in sorted(SETTING_C_EXPERIMENTS):
            paper = {"paper_train": PAPER_SETTING_C_TRAIN[experiment],
                     "paper_test": PAPER_SETTING_C_TEST}
            try:
                pool, test = setting_c_pool(frames, task, experiment, reading)
            except ValueError as err:
                result[reading][experiment] = {"error": str(err), **paper}
                continue
            train, dev = sample_dev_by_tweet(pool, dev_fraction, seed)
            result[reading][experiment] = {
                "pool": int(len(pool)),
                "pool_tweets": int(pool["tweet_id"].nunique()),
                "pool_events": {str(k): int(v) for k, v in
                                pool["event_name"].value_counts().sort_index().items()},
                "train": int(len(train)),
                "dev": int(len(_agreeing(dev))),
                "test": int(len(test)),
                **paper,
            }
    return result
