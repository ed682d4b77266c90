"""The three CrisisMMD tasks of the paper (section 4.1) and their label sets.

A `Task` maps the dataset's raw label strings to the task's class names. A raw
label mapped to `None` is a known label that the task leaves out (its rows are
dropped); a raw label the task does not know at all is an error.
"""

import dataclasses
from typing import Mapping, Optional, Tuple


@dataclasses.dataclass(frozen=True)
class Task:
    """One classification task over CrisisMMD pairs.

    Attributes:
        name: the task's name in this package (`informative`, `humanitarian`,
            `severity`).
        file_stem: the word in the dataset's file names
            (`task_<file_stem>_text_img_<split>.tsv`).
        class_names: the task's classes, in the order of the model's outputs.
        label_map: raw dataset label -> class name, or `None` for a known
            label whose rows the task drops.
        image_only_labels: True where the dataset labels the image only (the
            damage files have no `label_text`/`label_image` columns).
    """

    name: str
    file_stem: str
    class_names: Tuple[str, ...]
    label_map: Mapping[str, Optional[str]]
    image_only_labels: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_id(self, class_name: str) -> int:
        return self.class_names.index(class_name)

    def map_label(self, raw: str) -> Optional[str]:
        """Raw dataset label -> class name (None: dropped). KeyError if unknown."""
        return self.label_map[raw]


def _identity(names):
    return {n: n for n in names}


INFORMATIVE = Task(
    name="informative",
    file_stem="informative",
    class_names=("informative", "not_informative"),
    label_map=_identity(("informative", "not_informative")),
)

# The paper's five humanitarian classes (section 4.1): injured/dead and
# missing/found merge into affected individuals, vehicle damage stays its own
# class, and `not_humanitarian` pairs are dropped.
HUMANITARIAN = Task(
    name="humanitarian",
    file_stem="humanitarian",
    class_names=(
        "infrastructure_and_utility_damage",
        "vehicle_damage",
        "rescue_volunteering_or_donation_effort",
        "affected_individuals",
        "other_relevant_information",
    ),
    label_map={
        "infrastructure_and_utility_damage": "infrastructure_and_utility_damage",
        "vehicle_damage": "vehicle_damage",
        "rescue_volunteering_or_donation_effort": "rescue_volunteering_or_donation_effort",
        "affected_individuals": "affected_individuals",
        "injured_or_dead_people": "affected_individuals",
        "missing_or_found_people": "affected_individuals",
        "other_relevant_information": "other_relevant_information",
        "not_humanitarian": None,
    },
)

# The five classes of the dataset authors' own multimodal baselines (Ofli,
# Alam, Imran 2020): vehicle damage merges into infrastructure damage and
# `not_humanitarian` is kept as a class.
HUMANITARIAN_OFFICIAL = Task(
    name="humanitarian",
    file_stem="humanitarian",
    class_names=(
        "affected_individuals",
        "infrastructure_and_utility_damage",
        "not_humanitarian",
        "other_relevant_information",
        "rescue_volunteering_or_donation_effort",
    ),
    label_map={
        "infrastructure_and_utility_damage": "infrastructure_and_utility_damage",
        "vehicle_damage": "infrastructure_and_utility_damage",
        "rescue_volunteering_or_donation_effort": "rescue_volunteering_or_donation_effort",
        "affected_individuals": "affected_individuals",
        "injured_or_dead_people": "affected_individuals",
        "missing_or_found_people": "affected_individuals",
        "other_relevant_information": "other_relevant_information",
        "not_humanitarian": "not_humanitarian",
    },
)

SEVERITY = Task(
    name="severity",
    file_stem="damage",
    class_names=("severe_damage", "mild_damage", "little_or_no_damage"),
    label_map=_identity(("severe_damage", "mild_damage", "little_or_no_damage")),
    image_only_labels=True,
)

TASK_NAMES = ("informative", "humanitarian", "severity")
_ALIASES = {"damage": "severity"}
HUMANITARIAN_LABEL_SETS = ("paper", "official")


def get_task(name: str, humanitarian_labels: str = "paper") -> Task:
    """The `Task` called `name` (`damage` is an alias of `severity`).

    Args:
        name: `informative`, `humanitarian`, `severity` or `damage`.
        humanitarian_labels: `paper` (the paper's five classes) or `official`
            (the dataset authors' five-class merge); humanitarian only.
    """
    key = _ALIASES.get(name, name)
    if key not in TASK_NAMES:
        raise ValueError(
            f"Unknown task {name!r}; expected one of {TASK_NAMES + tuple(_ALIASES)}."
        )
    if humanitarian_labels not in HUMANITARIAN_LABEL_SETS:
        raise ValueError(
            f"Unknown humanitarian label set {humanitarian_labels!r}; "
            f"expected one of {HUMANITARIAN_LABEL_SETS}."
        )
    if key == "informative":
        return INFORMATIVE
    if key == "severity":
        return SEVERITY
    return HUMANITARIAN if humanitarian_labels == "paper" else HUMANITARIAN_OFFICIAL
