"""`--split paper`: a seeded re-split with the proportions of the paper's Table 2.

Section 4.2 (Setting A): "We mix the data from all seven crisis events and
split the data into training, dev and test sets." That split was never
published, and its sizes are not those of the official CrisisMMD v2.0 splits
(Setting A informative: 7,876 / 553 / 2,821 pairs in Table 2, while the
official agreed-label train and dev files alone hold 9,601 and 1,573). `split="official"` (default)
keeps the files' splits; `split="paper"` pools every split file present and
re-splits it with Table 2's train / dev / test proportions for the task:

- by tweet id: the images of one tweet never straddle splits (the official
  damage splits have 62 tweets with images in both train and dev);
- by agreeing pairs (eq. 11): each tweet weighs its agreeing pairs, so dev and
  test get Table 2's shares of the agreeing pairs; tweets without one go to
  train (only Setting B keeps their pairs). Setting B uses Setting A's
  proportions, as its dev and test "are similar to the previous setting":
  for one seed, A's and B's dev and test are the same pairs;
- seeded (the run's data seed), independent of file and row order: tweets
  are ordered by a seeded hash of their id, so a pool that differs by a few
  tweets (e.g. the two pairs of Setting A's informative training file that
  Setting B's lacks) moves only those tweets, not the whole split.

Only the files present are pooled: with the test files withheld (as in the
project's shared copy) the re-split's train, dev and test all come from the
official train and dev files. It is a split with the paper's proportions, not
the paper's split.
"""

from typing import Dict, Mapping, Tuple

import hashlib

import numpy as np
import pandas as pd

from crisis_keras.data.table2 import PAPER_SPLIT_COUNTS

SPLIT_CHOICES = ("official", "paper")


def paper_proportions(task_name: str) -> Tuple[float, float, float]:
    """(train, dev, test) fractions of Setting A's Table 2 row for `task_name`."""
    counts = PAPER_SPLIT_COUNTS.get(("A", task_name))
    if counts is None:
        tasks = sorted(t for _, t in PAPER_SPLIT_COUNTS)
        raise ValueError(f"--split paper: Table 2 has no row for task {task_name!r} (has {tasks}).")
    total = float(sum(counts))
    return tuple(c / total for c in counts)


def tweet_order_key(tweet_id: str, seed: int) -> int:
    """The seeded position of a tweet in the re-split's shuffle (a 64-bit hash)."""
    digest = hashlib.blake2b(f"{int(seed)}:{tweet_id}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _pool(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    if not frames:
        raise ValueError("--split paper needs at least one split table to pool.")
    pooled = pd.concat(list(frames.values()), ignore_index=True)
    repeated = pooled[pooled["image_id"].duplicated(keep=False)]
    if not repeated.empty:
        first = repeated.iloc[0]
        where = [f"{r.source_file}, line {r.source_line}"
                 for r in repeated[repeated["image_id"] == first["image_id"]].itertuples()]
        raise ValueError(
            f"--split paper: image_id {first['image_id']!r} is in more than one split file "
            f"({'; '.join(where)}); the re-split needs each pair once."
        )
    return pooled


def resplit_like_paper(
    frames: Mapping[str, pd.DataFrame], task, seed: int = 0
) -> Dict[str, pd.DataFrame]:
    """Pool the raw split tables and re-split them by tweet (see module docstring).

    Args:
        frames: split name -> raw table (`read_split_file`); all are pooled.
        task: the `Task` (its name picks the Table 2 row).
        seed: the data seed.

    Returns:
        {"train", "dev", "test"} -> raw tables (index reset), to which the
        setting (`settings.select_setting`) is then applied.
    """
    fractions = paper_proportions(getattr(task, "name", task))
    pooled = _pool(frames)
    agreeing = (pooled["label_id"] >= 0) & ~pooled["disagree"]
    weights = agreeing.groupby(pooled["tweet_id"]).sum()
    tweets = sorted(weights.index[weights > 0], key=lambda t: (tweet_order_key(t, seed), t))
    w = weights.loc[tweets].to_numpy(dtype=float)
    total = w.sum()
    midpoints = np.cumsum(w) - w / 2.0  # a tweet goes where its middle pair falls
    n_test = round(fractions[2] * total)
    n_dev = round(fractions[1] * total)
    split_of = dict.fromkeys(pooled["tweet_id"], "train")
    for tweet, middle in zip(tweets, midpoints):
        if middle < n_test:
            split_of[tweet] = "test"
        elif middle < n_test + n_dev:
            split_of[tweet] = "dev"
    assigned = pooled["tweet_id"].map(split_of)
    return {
        split: pooled[assigned == split].reset_index(drop=True)
        for split in ("train", "dev", "test")
    }
