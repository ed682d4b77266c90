"""Setting B's forced SSE transition on disagreeing pairs (section 4.2, eq. 9-10).

In Setting B the paper keeps training pairs whose image and text classes
differ (eq. 12) and "manually sets p0 = 1" for them: with p0 = 1 the pair
always transitions (eq. 10), and in the limit rho -> inf of eq. 9 the new
sample is always one of the same class, so the pair becomes consistent.
`make_consistent` draws that transition in the input pipeline: for each
disagreeing pair, every side (image or text) whose class differs from the
pair's `label` takes the content of a random training pair whose same side
has class `label`.

Call it afresh each epoch with a new seed on the original table; never
write its output back (swaps must not pile up across epochs).
"""

import numpy as np
import pandas as pd

# Columns that travel with each side of a pair.
SIDE_COLUMNS = {
    "image": ("image", "image_path", "label_image", "label_image_id"),
    "text": ("tweet_text", "text", "label_text", "label_text_id"),
}


def make_consistent(train_df: pd.DataFrame, seed: int) -> pd.DataFrame:
    """A copy of `train_df` where every pair's text and image classes agree.

    Args:
        train_df: a training table (columns of `crisismmd.COLUMNS`).
        seed: seed of this epoch's draw of donors.

    Returns:
        A new table (the input is never modified) with the swapped sides,
        `disagree` all False, and two more columns: `sse_side` (`"image"`,
        `"text"`, `"image+text"` if both sides differed from `label`, or
        `""`) and `sse_partner` (the donor's `image_id`; two ids joined by
        `+` for `"image+text"`; `""` when unchanged).

    Raises:
        ValueError: a class needed by some disagreeing pair has no donor
            (no training pair whose side carries that class).
    """
    required = {"label", "image_id", "disagree"} | {c for cs in SIDE_COLUMNS.values() for c in cs}
    missing = sorted(required - set(train_df.columns))
    if missing:
        raise KeyError(f"make_consistent: the table lacks column(s) {missing}.")
    rng = np.random.default_rng(seed)
    out = train_df.copy()
    n = len(out)
    labels = train_df["label"].to_numpy()
    disagree = train_df["disagree"].to_numpy(dtype=bool)
    image_ids = train_df["image_id"].astype(str).to_numpy()
    sides = np.full(n, "", dtype=object)
    partners = np.full(n, "", dtype=object)

    for side, columns in SIDE_COLUMNS.items():
        side_labels = train_df[f"label_{side}"].to_numpy()
        needs = np.flatnonzero(disagree & (side_labels != labels))
        if needs.size == 0:
            continue
        donors = np.empty(needs.size, dtype=np.int64)
        for cls in pd.unique(labels[needs]):
            rows = np.flatnonzero(labels[needs] == cls)
            pool = np.flatnonzero(side_labels == cls)
            if pool.size == 0:
                first = image_ids[needs[rows[0]]]
                raise ValueError(
                    f"make_consistent: no training pair has {side} class {cls!r} to give "
                    f"to {rows.size} disagreeing pair(s) labelled {cls!r} (first: "
                    f"image_id {first}); drop them or use Setting A."
                )
            donors[rows] = rng.choice(pool, size=rows.size)
        targets = out.index[needs]
        for column in columns:
            out.loc[targets, column] = train_df[column].to_numpy()[donors]
        sides[needs] = np.where(sides[needs] == "", side, sides[needs] + "+" + side)
        partners[needs] = np.where(
            partners[needs] == "",
            image_ids[donors],
            partners[needs] + "+" + image_ids[donors],
        )

    # Every disagreeing pair now has both sides equal to `label`.
    out["disagree"] = (out["label_text"] != out["label_image"]).astype(bool)
    out["sse_side"] = sides
    out["sse_partner"] = partners
    return out
