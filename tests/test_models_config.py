"""ModelConfig JSON round trip and the model registry (no model building here
except where noted; builds use tiny backbones)."""

import dataclasses
import json

import pytest

from crisis_keras.models import (
    MODEL_NAMES,
    ModelConfig,
    build_model,
    full_size_random_config,
    get_entry,
    model_names,
    register_model,
    register_variant,
    resolve_config,
    tiny_config,
    unregister_model,
)


def test_config_defaults_follow_the_paper():
    c = ModelConfig()
    assert c.image_backbone == "densenet121" and c.image_weights == "imagenet"
    assert c.image_size == 224 and c.text_backbone == "bert_base_en_uncased"
    assert c.projection_units == 100 and c.projection_activation == "relu"  # K, F of eq. 3-4
    assert c.attention == "cross" and c.gating == "cross" and c.combine == "concat"
    assert c.self_attention and c.sse and c.text_pooling == "cls"


def test_config_json_round_trip():
    c = ModelConfig(image_weights=None, sse_rho=float("inf"), seed=3, dropout=0.25, text_backbone="tiny")
    text = c.to_json()
    assert json.loads(text.replace("Infinity", "1e999"))["seed"] == 3
    assert ModelConfig.from_json(text) == c
    assert ModelConfig.from_dict(c.to_dict()) == c
    assert c.replace(head_units=8).head_units == 8 and c.head_units == 256


@pytest.mark.parametrize(
    "field, value",
    [
        ("attention", "bilinear"),
        ("gating", "both"),
        ("image_backbone", "resnet"),
        ("dropout", 1.0),
        ("sse_p0", 1.5),
        ("sse_rho", 0.5),
        ("image_size", 16),
        ("projection_units", 0),
        ("head_units", -1),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        ModelConfig(**{field: value})


def test_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown field.*projection_unit"):
        ModelConfig.from_dict({"projection_unit": 10})
    with pytest.raises(ValueError, match="unknown field"):
        ModelConfig().replace(sse_p=0.2)


def test_named_configs():
    assert tiny_config().image_backbone == "tiny" and tiny_config().text_backbone == "tiny"
    full = full_size_random_config()
    assert full.image_weights is None and full.text_backbone == "bert_base_random"
    assert full.image_backbone == "densenet121" and full.image_size == 224


def test_registry_lists_the_paper_rows():
    names = model_names()
    for name in [
        "sse_cross", "densenet", "bert", "attention_variant_1", "attention_variant_2",
        "attention_variant_3", "co_attention", "feature_fusion", "ablation_no_self_attention",
        "ablation_no_cross_attention", "ablation_self_gating", "ablation_no_dropout",
        "ablation_no_sse",
    ]:
        assert name in names
    assert sorted(MODEL_NAMES) == names


def test_variant_overrides_and_precedence():
    base = tiny_config(sse=True, self_attention=True, dropout=0.3)
    c1 = resolve_config("attention_variant_2", base)
    assert (c1.sse, c1.self_attention, c1.dropout) == (False, False, 0.3)
    # keyword overrides win over the variant's own settings
    assert resolve_config("attention_variant_2", base, sse=True).sse is True
    assert resolve_config("attention_variant_3", base).gating == "self"
    assert resolve_config("co_attention", base).attention == "co"
    ff = resolve_config("feature_fusion", base)
    assert (ff.attention, ff.self_attention, ff.sse) == ("none", False, False)
    assert resolve_config("ablation_no_dropout", base).dropout == 0.0
    assert resolve_config("bert", base).head_units == 0
    assert resolve_config("sse_cross", base.to_dict()) == base
    assert get_entry("co_attention").base == "sse_cross"


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown model 'nope'.*sse_cross"):
        build_model("nope", 2)
    with pytest.raises(ValueError, match="already registered"):
        register_variant("sse_cross", "sse_cross")
    with pytest.raises(ValueError, match="unknown field"):
        register_variant("broken_variant", "sse_cross", not_a_field=1)
    assert "broken_variant" not in model_names()
    with pytest.raises(ValueError, match="at least 2 classes"):
        build_model("bert", 1, tiny_config())
    with pytest.raises(TypeError, match="Task, a task name or an int"):
        build_model("bert", 2.0, tiny_config())


def test_register_model_adds_a_new_row_without_touching_others():
    calls = []

    @register_model("test_models_config_dummy", head_units=7)
    def build_dummy(num_classes, config, name):
        calls.append((num_classes, config, name))
        return "built"

    try:
        assert build_model("test_models_config_dummy", "informative", tiny_config()) == "built"
    finally:
        unregister_model("test_models_config_dummy")
    assert "test_models_config_dummy" not in model_names()
    (num_classes, config, name), = calls
    assert num_classes == 2 and config.head_units == 7 and name == "test_models_config_dummy"
    assert resolve_config("sse_cross", tiny_config()).head_units == 256


def test_build_model_accepts_task_objects_and_names():
    from crisis_keras.data.tasks import get_task

    model = build_model("bert", get_task("humanitarian"), tiny_config())
    assert model.output_shape == (None, 5)
    assert build_model("bert", "severity", tiny_config()).output_shape == (None, 3)
    assert dataclasses.asdict(model.model_config)["text_backbone"] == "tiny"
    assert model.registered_name == "bert"
