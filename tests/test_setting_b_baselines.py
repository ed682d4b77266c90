"""Setting B's baselines as section 4.2 describes them.

"Since unimodal models only receive one of the modalities, it is also
possible to train them separately on images and texts and use an average of
their prediction in the testing stage": the image model sees every training
image once with its image label, the text model every tweet once with its
text label, SSE-Cross keeps the consistency draw, and Score Fusion is the
mean of the two unimodal runs' probabilities. Tiny backbones on demo data
(about 20% of its Setting B training pairs disagree; some tweets have
several images).
"""

import json
import pathlib
import sys

import keras
import numpy as np
import pandas as pd
import pytest

from crisis_keras.data.consistency import make_consistent
from crisis_keras.data.crisismmd import load_crisismmd
from crisis_keras.data.demo import make_demo_data
from crisis_keras.data.setting_b import setting_b_training_table, unimodal_training_table
from crisis_keras.evaluation.metrics import classification_metrics
from crisis_keras.training import resume, trainer
from crisis_keras.training.config import TrainConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # experiments/ is not an installed package (setup.cfg)
from experiments import report, runner  # noqa: E402

TINY = dict(text_backbone="tiny", image_backbone="tiny", image_weights=None, image_size=32,
            resize_to=36, sequence_length=16, batch_size=8, epochs=2)
COLUMNS = ["image_id", "tweet_id", "image_path", "text", "label", "label_id"]


# ---- The per-modality table (pure) -------------------------------------------


@pytest.fixture
def humanitarian_train(tmp_path, write_crisismmd_tsv, make_pair_row):
    """Setting B humanitarian train rows: merged fine labels, dropped sides, a 2-image tweet."""
    rows = [
        make_pair_row("100_0", "roof gone", "affected_individuals",
                      "injured_or_dead_people", "affected_individuals"),
        make_pair_row("100_1", "roof gone", "affected_individuals",
                      "injured_or_dead_people", "infrastructure_and_utility_damage"),
        make_pair_row("101_0", "car flipped", "vehicle_damage", "vehicle_damage",
                      "not_humanitarian"),
        make_pair_row("102_0", "hello", "rescue_volunteering_or_donation_effort",
                      "not_humanitarian", "rescue_volunteering_or_donation_effort"),
        make_pair_row("103_0", "news", "other_relevant_information"),
        make_pair_row("104_0", "selfie", "not_humanitarian"),
        make_pair_row("105_0", "car crushed", "vehicle_damage"),
        make_pair_row("106_0", "donate now", "rescue_volunteering_or_donation_effort"),
    ]
    write_crisismmd_tsv(tmp_path / "task_humanitarian_text_img_train.tsv", rows)
    return load_crisismmd(tmp_path, "humanitarian", setting="B", splits=("train",))


def test_unimodal_tables_carry_each_sides_own_mapped_label(humanitarian_train):
    train = humanitarian_train.splits["train"]
    classes = humanitarian_train.class_names
    assert list(train["image_id"]) == ["100_0", "100_1", "101_0", "102_0", "103_0", "105_0",
                                       "106_0"]

    image = unimodal_training_table(train, "image")
    # 101_0's image is not_humanitarian, which the paper's classes drop.
    assert list(image["image_id"]) == ["100_0", "100_1", "102_0", "103_0", "105_0", "106_0"]
    assert [classes[i] for i in image["label_id"]][:4] == [
        "affected_individuals", "infrastructure_and_utility_damage",
        "rescue_volunteering_or_donation_effort", "other_relevant_information"]
    assert (image["label"] == image["label_image"]).all()

    text = unimodal_training_table(train, "text")
    # Tweet 100 once (two images); 102's text is not_humanitarian.
    assert list(text["tweet_id"]) == ["100", "101", "103", "105", "106"]
    assert [classes[i] for i in text["label_id"]][:3] == [
        "affected_individuals", "vehicle_damage", "other_relevant_information"]
    assert list(text["text"])[:3] == ["roof gone", "car flipped", "news"]
    # The input is left as it was.
    assert [classes[i] for i in train["label_id"]][:4] == [
        "affected_individuals", "affected_individuals", "vehicle_damage",
        "rescue_volunteering_or_donation_effort"]


def test_a_tweet_with_two_text_labels_and_unknown_names_raise(humanitarian_train):
    train = humanitarian_train.splits["train"].copy()
    train.loc[1, "label_text_id"] = 4
    with pytest.raises(ValueError, match="tweet_id 100"):
        unimodal_training_table(train, "text")
    with pytest.raises(ValueError, match="modality"):
        unimodal_training_table(train, "audio")
    with pytest.raises(ValueError, match="setting_b_unimodal"):
        setting_b_training_table(train, ("image",), "pair_label", seed=0)
    with pytest.raises(KeyError, match="tweet_id"):
        unimodal_training_table(train.drop(columns=["tweet_id"]), "text")


def test_procedures_by_model_modalities(humanitarian_train):
    train = humanitarian_train.splits["train"]
    own = setting_b_training_table(train, ("text",), None, seed=3)
    pd.testing.assert_frame_equal(own, unimodal_training_table(train, "text"))
    drawn = make_consistent(train, seed=3)
    for modalities, procedure in ((("text", "image"), "own_labels"), (("image",), "consistency"),
                                  (("text",), "consistency")):
        pd.testing.assert_frame_equal(
            setting_b_training_table(train, modalities, procedure, seed=3), drawn)
    config = TrainConfig(task="humanitarian", setting="B", model="bert",
                         setting_b_unimodal="consistency")
    assert config.resolved_run_name() == "humanitarian-bert-settingB-consistency-seed0"


def test_fusion_refuses_unfinished_runs_other_data_and_wrong_modalities(tmp_path):
    import dataclasses

    from crisis_keras.models import build_model
    from crisis_keras.models.late_fusion import compose_score_fusion
    from crisis_keras.training.late_fusion import check_same_data, fuse_runs

    config = TrainConfig(task="informative", setting="B", model="score_fusion",
                         output_dir=str(tmp_path), **TINY)
    with pytest.raises(FileNotFoundError, match="train it first"):
        fuse_runs(tmp_path / "no-image-run", tmp_path / "no-text-run", config)
    other = dataclasses.replace(config, model="bert", task="humanitarian")
    with pytest.raises(ValueError, match="task"):
        check_same_data(config, {"text": (tmp_path / "bert", other)})
    check_same_data(config, {"text": (tmp_path / "bert", dataclasses.replace(
        config, model="bert", epochs=9, setting_b_unimodal="own_labels"))})
    with pytest.raises(ValueError, match="setting_b_unimodal"):
        check_same_data(config, {"text": (tmp_path / "bert", dataclasses.replace(
            config, model="bert", setting_b_unimodal="consistency"))})

    tiny = dict(text_backbone="tiny", image_backbone="tiny", image_weights=None,
                image_size=32, sequence_length=16)
    densenet, bert = build_model("densenet", 2, **tiny), build_model("bert", 2, **tiny)
    with pytest.raises(ValueError, match="text-only model"):
        compose_score_fusion(densenet, densenet)
    with pytest.raises(ValueError, match="same head"):
        compose_score_fusion(densenet, build_model("bert", 2, **tiny, head_units=8))
    with pytest.raises(ValueError, match="classes"):
        compose_score_fusion(densenet, build_model("bert", 3, **tiny))
    assert compose_score_fusion(densenet, bert).registered_name == "score_fusion"


# ---- Through the runner: Table 6, informative column -------------------------


@pytest.fixture(scope="module")
def table6(tmp_path_factory):
    """Table 6's informative column run by the runner; every training table captured."""
    root = tmp_path_factory.mktemp("setting_b")
    data_dir = make_demo_data(root / "demo", sizes={"train": 32, "dev": 16, "test": 16})
    output_dir = root / "runs"
    overrides = dict(data_dir=str(data_dir), **TINY)
    captured = []
    original = trainer.dataset_for

    def capture(model, table, config, **kwargs):
        if kwargs.get("training"):
            captured.append((config.model, table.copy()))
        return original(model, table, config, **kwargs)

    patch = pytest.MonkeyPatch()
    patch.setattr(trainer, "dataset_for", capture)
    lines = []
    try:
        outcomes = runner.run_tables([6], overrides=overrides, output_dir=output_dir,
                                     columns=["informative"], stop_on_error=True,
                                     out=lines.append)
    finally:
        patch.undo()
    train = load_crisismmd(data_dir, "informative", setting="B").splits["train"]
    # The data exercise what is tested: disagreeing pairs, tweets with several images.
    assert train["disagree"].sum() >= 3 and train["tweet_id"].nunique() < len(train)
    return dict(data_dir=data_dir, output_dir=output_dir, overrides=overrides, train=train,
                captured=captured, outcomes={o.model: o for o in outcomes}, log="\n".join(lines))


def _tables(table6, model):
    tables = [t for m, t in table6["captured"] if m == model]
    assert len(tables) == TINY["epochs"], model  # one per epoch
    return tables


def test_image_baseline_sees_each_training_image_once_with_its_image_label(table6):
    train = table6["train"]
    own = dict(zip(train["image_id"], train["label_image_id"]))
    for table in _tables(table6, "densenet"):
        assert sorted(table["image_id"]) == sorted(train["image_id"])  # each once
        assert sorted(table["image_path"]) == sorted(train["image_path"])
        assert list(table["label_id"]) == [own[i] for i in table["image_id"]]
        assert (table["label_id"].to_numpy() != train.set_index("image_id").loc[
            table["image_id"], "label_id"].to_numpy()).any()  # not the pair label


def test_text_baseline_sees_each_tweet_once_with_its_text_label(table6):
    train = table6["train"]
    own = dict(zip(train["tweet_id"], train["label_text_id"]))
    text = dict(zip(train["tweet_id"], train["text"]))
    for table in _tables(table6, "bert"):
        assert sorted(table["tweet_id"]) == sorted(set(train["tweet_id"]))  # each once
        assert len(table) < len(train)
        assert list(table["label_id"]) == [own[t] for t in table["tweet_id"]]
        assert list(table["text"]) == [text[t] for t in table["tweet_id"]]


def test_sse_cross_keeps_the_consistency_draw(table6):
    train = table6["train"]
    for epoch, table in enumerate(_tables(table6, "sse_cross")):
        expected = make_consistent(train, seed=resume.epoch_seed(0, epoch, "setting-b"))
        pd.testing.assert_frame_equal(table[COLUMNS], expected[COLUMNS])
        assert not table["disagree"].any()
        assert (table["sse_side"] != "").sum() == train["disagree"].sum()


def _test_probabilities(run_dir, data):
    config = TrainConfig.from_json_file(run_dir / "config.json")
    model = keras.saving.load_model(run_dir / "best_model.keras")
    ds = trainer.dataset_for(model, data.splits["test"], config, training=False, seed=0)
    return model.predict(ds, verbose=0)


def test_score_fusion_averages_the_two_separately_trained_runs(table6):
    assert "score_fusion" not in {m for m, _ in table6["captured"]}  # nothing trained
    outcome = table6["outcomes"]["score_fusion"]
    assert outcome.status == "composed" and outcome.metrics is not None
    fused_dir = outcome.run_dir
    for name in ("config.json", "classes.json", "best_model.keras", "metrics.json",
                 "predictions.tsv", "late_fusion.json", "model_summary.txt"):
        assert (fused_dir / name).exists(), name
    sources = json.loads((fused_dir / "late_fusion.json").read_text())
    image_dir = table6["outcomes"]["densenet"].run_dir
    text_dir = table6["outcomes"]["bert"].run_dir
    assert (sources["image"]["run_dir"], sources["text"]["run_dir"]) == (str(image_dir),
                                                                       str(text_dir))

    data = trainer.load_data(TrainConfig.from_json_file(fused_dir / "config.json"))
    fused = _test_probabilities(fused_dir, data)
    average = (_test_probabilities(image_dir, data) + _test_probabilities(text_dir, data)) / 2
    np.testing.assert_allclose(fused, average, atol=1e-6)

    test = data.splits["test"]
    metrics = json.loads((fused_dir / "metrics.json").read_text())["test"]
    expected = classification_metrics(test["label_id"].to_numpy(), average.argmax(-1),
                                      data.class_names)
    assert metrics["accuracy"] == pytest.approx(expected["accuracy"])
    assert metrics["macro_f1"] == pytest.approx(expected["macro_f1"])
    predictions = pd.read_csv(fused_dir / "predictions.tsv", sep="\t", dtype={"image_id": str})
    predictions = predictions[predictions["split"] == "test"]
    assert list(predictions["image_id"]) == list(test["image_id"])
    columns = [f"p_{c}" for c in data.class_names]
    np.testing.assert_allclose(predictions[columns].to_numpy(), average, atol=1e-5)


def test_score_fusion_is_reported_and_not_composed_twice(table6, tmp_path):
    lines = []
    outcomes = runner.run_tables([6], overrides=table6["overrides"],
                                 output_dir=table6["output_dir"], rows=["score-fusion"],
                                 columns=["informative"], stop_on_error=True, out=lines.append)
    assert [o.status for o in outcomes] == ["already finished"]
    assert "is already complete" in "\n".join(lines)

    report.write_reports([6], table6["output_dir"], tmp_path, out=lambda *a: None)
    text = (tmp_path / "table6.md").read_text()
    rows = [[c.strip() for c in line.strip().strip("|").split(" | ")]
            for line in text.splitlines() if line.startswith("| ")]
    index = next(i for i, r in enumerate(rows) if r[0] == "Score Fusion" and r[2] == "paper")
    test = table6["outcomes"]["score_fusion"].metrics["test"]
    assert rows[index + 1][3:6] == [f"{100 * test[m]:.2f}"
                                    for m in ("accuracy", "macro_f1", "weighted_f1")]
    assert "not trained: the mean of the probabilities of" in text
    for label in ("DenseNet [30]: Trained on images alone", "BERT [17]: Trained on texts alone",
                  "Score Fusion: Not trained", "SSE-Cross-BERT-DenseNet: Trained on the pairs"):
        assert f"- {label}" in text, label


def test_consistency_keeps_the_old_score_fusion_run(table6, tmp_path):
    """With setting_b_unimodal='consistency' score fusion is a trained row again."""
    lines = []
    overrides = {**table6["overrides"], "setting_b_unimodal": "consistency"}
    runner.run_tables([6], overrides=overrides, output_dir=tmp_path, rows=["score-fusion"],
                      dry_run=True, out=lines.append)
    assert "no training" not in "\n".join(lines)
    lines = []
    runner.run_tables([6], overrides=table6["overrides"], output_dir=tmp_path,
                      rows=["score-fusion"], dry_run=True, out=lines.append)
    assert ("no training: the average of the runs of table6-densenet-informative and "
            "table6-bert-informative") in "\n".join(lines)


def test_the_composed_score_fusion_exports_like_a_trained_run(table6, tmp_path):
    import tensorflow as tf

    from crisis_keras import export
    from crisis_keras.data.images import preprocess_batch_for_eval
    from crisis_keras.serving.loading import load_export
    from support_runs import encode_image

    fused_dir = table6["outcomes"]["score_fusion"].run_dir
    export.export_run(fused_dir, tmp_path / "export", token_ids=False)
    serve = load_export(tmp_path / "export").signatures["serving_default"]
    texts = tf.constant(["Flood  damage http://t.co/x", "rescue team"])
    images = tf.constant([encode_image(1), encode_image(2, fmt="PNG")])
    got = serve(text=texts, image_bytes=images)["probabilities"].numpy()
    model = keras.saving.load_model(fused_dir / "best_model.keras")
    pixels = preprocess_batch_for_eval(images, resize_to=TINY["resize_to"],
                                       crop=TINY["image_size"])
    np.testing.assert_allclose(got, np.asarray(model({"text": texts, "image": pixels})),
                               atol=1e-5)


# ---- The feature cache serves the deduplicated text table ---------------------


def test_feature_cache_serves_each_tweet_of_the_text_table(tmp_path):
    from crisis_keras.features import FeatureSpec, FeatureStore
    from crisis_keras.features.dataset import make_feature_dataset
    from crisis_keras.features.extract import extract_features

    data_dir = make_demo_data(tmp_path / "demo", sizes={"train": 32, "dev": 8, "test": 8})
    data = trainer.load_data(TrainConfig(data_dir=str(data_dir), task="informative",
                                         setting="B", **TINY))
    spec = FeatureSpec(
        image_backbone=None, image_weights=None, image_weights_sha256=None,
        text_backbone="tiny", text_weights_sha256=None, text_pooling="cls",
        sequence_length=16, image_size=32, resize_to=36, train_crops=0, crop_seed=0,
        dtype="float32", modalities=["text"])
    keras.utils.set_random_seed(0)
    store = FeatureStore(extract_features(data, tmp_path / "cache", spec, splits=("train",),
                                          batch_size=8, progress=False,
                                          announce=lambda *_: None))
    train = data.splits["train"]
    table = unimodal_training_table(train, "text")
    assert len(table) < len(train)
    ds, kept = make_feature_dataset(store, "train", table, training=False, batch_size=64,
                                    modalities=("text",))
    pd.testing.assert_frame_equal(kept, table)
    features, labels = next(iter(ds))
    np.testing.assert_array_equal(labels.numpy(), table["label_id"].to_numpy())
    # Each tweet's own cached row: the full table's row with the same image.
    full, _ = make_feature_dataset(store, "train", train, training=False, batch_size=64,
                                   modalities=("text",))
    every = dict(zip(train["image_id"], next(iter(full))[0]["text_features"].numpy()))
    np.testing.assert_array_equal(features["text_features"].numpy(),
                                  np.stack([every[i] for i in table["image_id"]]))
