"""Restricting a dataset to some events (`--events srilanka_floods,...`).

CrisisMMD's images can be had per event; e.g. only `srilanka_floods` may be
on disk. `filter_events(data, "srilanka_floods")` keeps, in every split, the
rows whose `event_name` is one of the given events, and fails when that
leaves a split empty (so a typo never trains on nothing).
"""

import dataclasses
from typing import Iterable, Tuple, Union

import pandas as pd

from crisis_keras.data.crisismmd import CrisisMMD


def parse_events(events: Union[str, Iterable[str]]) -> Tuple[str, ...]:
    """`"a, b"` or `["a", "b"]` -> `("a", "b")` (blanks and repeats removed)."""
    items = events.split(",") if isinstance(events, str) else list(events)
    names = tuple(dict.fromkeys(str(e).strip() for e in items if str(e).strip()))
    if not names:
        raise ValueError(f"--events needs at least one event name, got {events!r}.")
    return names


def filter_events(data: CrisisMMD, events: Union[str, Iterable[str]]) -> CrisisMMD:
    """`data` with every split restricted to the rows of `events`."""
    names = parse_events(events)
    splits = {}
    for split, table in data.splits.items():
        kept = table[table["event_name"].isin(names)].reset_index(drop=True)
        if kept.empty:
            present = sorted(pd.unique(table["event_name"]))
            raise ValueError(
                f"--events {','.join(names)} leaves the {split} split of {data.data_dir} "
                f"empty; its events are {present}."
            )
        splits[split] = kept
    return dataclasses.replace(data, splits=splits)
