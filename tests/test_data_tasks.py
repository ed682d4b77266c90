"""Label sets of the three tasks (paper, section 4.1)."""

import pytest

from crisis_keras.data.tasks import get_task


def test_informative_labels():
    task = get_task("informative")
    assert task.class_names == ("informative", "not_informative")
    assert task.map_label("not_informative") == "not_informative"
    assert task.class_id("not_informative") == 1


def test_paper_humanitarian_merges_and_drops():
    task = get_task("humanitarian")
    assert task.num_classes == 5
    assert task.map_label("injured_or_dead_people") == "affected_individuals"
    assert task.map_label("missing_or_found_people") == "affected_individuals"
    assert task.map_label("vehicle_damage") == "vehicle_damage"
    assert task.map_label("not_humanitarian") is None
    assert "not_humanitarian" not in task.class_names


def test_official_humanitarian_set():
    task = get_task("humanitarian", humanitarian_labels="official")
    assert task.num_classes == 5
    assert task.map_label("vehicle_damage") == "infrastructure_and_utility_damage"
    assert task.map_label("not_humanitarian") == "not_humanitarian"
    assert task.map_label("injured_or_dead_people") == "affected_individuals"


def test_severity_and_damage_alias():
    assert get_task("damage") is get_task("severity")
    task = get_task("damage")
    assert task.file_stem == "damage"
    assert task.image_only_labels
    assert task.class_names == ("severe_damage", "mild_damage", "little_or_no_damage")


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="Unknown task"):
        get_task("sentiment")
    with pytest.raises(ValueError, match="humanitarian label set"):
        get_task("humanitarian", humanitarian_labels="fine")
    with pytest.raises(KeyError):
        get_task("informative").map_label("relevant")
