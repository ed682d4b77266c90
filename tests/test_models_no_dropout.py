"""Table 8's "- Dropout" (section 5.4: "If we remove dropout completely"):
every dropout of the sse_cross graph, BERT's internal ones included, is zero."""

import keras
import numpy as np
import pytest
from support_models import batch, tiny

from crisis_keras.models import ModelConfig, build_model
from crisis_keras.models.text_backbone import load_text_encoder

RATE_ATTRIBUTES = ("rate", "dropout", "dropout_rate")


def dropout_rates(model):
    """{path: rate} of every Dropout layer and every layer with a numeric
    `rate` / `dropout` / `dropout_rate`, over all nested models and sub-layers."""
    rates = {}

    def visit(layer, path):
        if isinstance(layer, keras.layers.Dropout):
            rates[path] = float(layer.rate)
        for attr in RATE_ATTRIBUTES:
            value = getattr(layer, attr, None)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                rates[f"{path}.{attr}"] = float(value)
        for child in layer._flatten_layers(include_self=False, recursive=False):
            visit(child, f"{path}/{child.name}")

    visit(model, model.name)
    return rates


def _unlabeled():
    x, _ = batch(labels=False)  # no sse_label: SSE is the identity, training or not
    return x


@pytest.fixture(scope="module")
def no_dropout():
    keras.utils.set_random_seed(0)
    return build_model("ablation_no_dropout", 2, tiny())


def test_plain_sse_cross_has_head_and_bert_dropout():
    keras.utils.set_random_seed(0)
    rates = dropout_rates(build_model("sse_cross", 2, tiny()))
    nonzero = {path for path, rate in rates.items() if rate > 0}
    assert any("head_dropout" in p for p in nonzero)
    assert any("embeddings_dropout" in p for p in nonzero)
    assert any("transformer_layer_0" in p and "feedforward_dropout" in p for p in nonzero)
    assert any("self_attention_dropout" in p for p in nonzero)


def test_ablation_no_dropout_has_no_dropout_anywhere(no_dropout):
    assert no_dropout.model_config.dropout == 0.0
    assert no_dropout.model_config.backbone_dropout == 0.0
    rates = dropout_rates(no_dropout)
    # the walk reaches BERT's sub-layers (the same ones that are nonzero in sse_cross)
    assert any("embeddings_dropout" in p for p in rates)
    assert sum("feedforward_dropout" in p for p in rates) >= 2  # both tiny layers
    assert {p: r for p, r in rates.items() if r != 0.0} == {}


def test_training_forward_pass_is_deterministic_only_without_dropout(no_dropout):
    x = _unlabeled()
    a, b = (no_dropout(x, training=True).numpy() for _ in range(2))
    np.testing.assert_array_equal(a, b)
    # the former ablation (head dropout only) still drops units inside BERT
    keras.utils.set_random_seed(0)
    head_only = build_model("sse_cross", 2, tiny(), dropout=0.0)
    a, b = (head_only(x, training=True).numpy() for _ in range(2))
    assert not np.array_equal(a, b)


def test_backbone_dropout_reaches_the_preset_loader(tmp_path):
    """A local keras-hub preset directory (the `from_preset` path of real
    checkpoints) takes the rate as a config override; None keeps the preset's."""
    keras.utils.set_random_seed(0)
    preprocessor, backbone = load_text_encoder("tiny", 16)
    assert backbone.dropout == 0.1  # keras-hub BERT's default
    preset = str(tmp_path / "tiny_preset")
    backbone.save_to_preset(preset)
    preprocessor.tokenizer.save_to_preset(preset)
    assert load_text_encoder(preset, 16)[1].dropout == 0.1
    _, zero = load_text_encoder(preset, 16, dropout=0.0)
    assert zero.dropout == 0.0
    assert {p: r for p, r in dropout_rates(zero).items() if r != 0.0} == {}


def test_no_dropout_model_survives_keras_save_load(no_dropout, tmp_path):
    path = str(tmp_path / "ablation_no_dropout.keras")
    no_dropout.save(path)
    restored = keras.models.load_model(path)
    assert restored.model_config == no_dropout.model_config
    assert {p: r for p, r in dropout_rates(restored).items() if r != 0.0} == {}
    x = _unlabeled()
    np.testing.assert_array_equal(restored(x).numpy(), no_dropout(x).numpy())


@pytest.mark.parametrize("value", [-0.1, 1.0])
def test_backbone_dropout_is_validated(value):
    with pytest.raises(ValueError, match="backbone_dropout"):
        ModelConfig(backbone_dropout=value)


def test_mmbt_shares_the_backbone_dropout_setting():
    """MMBT reuses BERT's embeddings_dropout for its image tokens: the field reaches it too."""
    keras.utils.set_random_seed(0)
    rates = dropout_rates(build_model("mmbt", 2, tiny(), backbone_dropout=0.0))
    assert any("embeddings_dropout" in p for p in rates)
    assert {p: r for p, r in rates.items() if r != 0.0} == {}
