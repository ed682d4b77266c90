"""What each model trains on in Setting B (section 4.2, eq. 12).

Setting B's training split keeps pairs whose image and text labels differ.
The paper treats the two kinds of model differently:

- Multimodal models (SSE-Cross-BERT-DenseNet and every other model taking
  both modalities) need one label per pair: each disagreeing pair makes the
  forced SSE transition (p0 = 1) to a consistent pair, drawn anew every
  epoch (`consistency.make_consistent`).
- "Since unimodal models only receive one of the modalities, it is also
  possible to train them separately on images and texts and use an average
  of their prediction in the testing stage": `unimodal_training_table`
  gives the image-only model every training image once with its own image
  label, and the text-only model every training tweet once with its own
  text label. Score Fusion in Setting B is then the average of those two
  models' probabilities (`training/late_fusion.py`), not a trained model.

Reading of "train on texts": CrisisMMD has one row per image, and a tweet
with several images repeats on several rows (with the same text label).
The text model sees each tweet (`tweet_id`) once per epoch, so a tweet with
four images does not weigh four times. Rows whose own label the task drops
(e.g. a `not_humanitarian` image of a pair labelled otherwise; class id -1)
are left out of that modality's table. The labels are the task's classes:
`crisismmd.read_split_file` maps `label_text` / `label_image` through the
task's label map into `label_text_id` / `label_image_id`.

The trainer applies this to every training table holding disagreeing pairs
(Setting B, and Setting C's `all_pairs` reading, which trains "as Setting B").

`SETTING_B_UNIMODAL` names the two procedures of `TrainConfig.
setting_b_unimodal`: `"own_labels"` (the above) and `"consistency"` (the
unimodal models too train on the consistency draw with the pair label, as
before; kept to measure the difference).
"""

from typing import Optional, Sequence

import pandas as pd

from crisis_keras.data.consistency import make_consistent

OWN_LABELS = "own_labels"
CONSISTENCY = "consistency"
SETTING_B_UNIMODAL = (OWN_LABELS, CONSISTENCY)
UNIMODAL_MODALITIES = ("image", "text")


def unimodal_training_table(table: pd.DataFrame, modality: str) -> pd.DataFrame:
    """The rows a `modality`-only model trains on, labelled by that modality.

    Args:
        table: a training table (columns of `crisismmd.COLUMNS`).
        modality: `"image"` (one row per image, label `label_image`) or
            `"text"` (one row per `tweet_id`, the first of its rows, label
            `label_text`).

    Returns:
        A new table (the input is not modified) with the rows kept, their
        original index, and `label` / `label_id` replaced by the modality's
        own class name / id. Rows whose own label the task drops (id -1)
        are left out.

    Raises:
        ValueError: unknown modality, or the rows of one tweet carry
            different text labels.
        KeyError: a needed column is missing.
    """
    if modality not in UNIMODAL_MODALITIES:
        raise ValueError(
            f"unimodal_training_table: modality must be one of {UNIMODAL_MODALITIES}, "
            f"got {modality!r}."
        )
    label, label_id = f"label_{modality}", f"label_{modality}_id"
    key = "image_id" if modality == "image" else "tweet_id"
    missing = sorted({label, label_id, key, "label", "label_id"} - set(table.columns))
    if missing:
        raise KeyError(f"unimodal_training_table: the table lacks column(s) {missing}.")
    out = table[table[label_id] >= 0]
    if modality == "text":
        labels_per_tweet = out.groupby(key, sort=False)[label_id].nunique()
        mixed = labels_per_tweet.index[labels_per_tweet > 1]
        if len(mixed):
            raise ValueError(
                f"unimodal_training_table: {len(mixed)} tweet(s) carry different text "
                f"labels on their rows (first: tweet_id {mixed[0]}); a tweet's text "
                "label must be the same for each of its images."
            )
    out = out[~out[key].duplicated(keep="first")].copy()
    out["label"] = out[label]
    out["label_id"] = out[label_id]
    return out


def setting_b_training_table(
    table: pd.DataFrame, modalities: Sequence[str], procedure: Optional[str], seed: int
) -> pd.DataFrame:
    """One epoch's Setting B training table for a model taking `modalities`.

    Args:
        table: the original training table (never modified, never replaced
            by an earlier epoch's output).
        modalities: the model's modalities (`crisis_model.model_modalities`).
        procedure: `"own_labels"` or `"consistency"` (`SETTING_B_UNIMODAL`);
            None means `"own_labels"` (`TrainConfig.setting_b_unimodal`).
        seed: this epoch's seed of the consistency draw.

    Returns:
        `unimodal_training_table(table, modality)` for a one-modality model
        under `"own_labels"`; otherwise `make_consistent(table, seed)`.
    """
    procedure = OWN_LABELS if procedure is None else procedure
    if procedure not in SETTING_B_UNIMODAL:
        raise ValueError(
            f"Unknown setting_b_unimodal {procedure!r}; expected one of {SETTING_B_UNIMODAL}."
        )
    modalities = tuple(modalities)
    if procedure == OWN_LABELS and len(modalities) == 1:
        return unimodal_training_table(table, modalities[0])
    return make_consistent(table, seed=seed)
