"""Runs the named configs of the paper's tables (`experiments/spec.py`).

`run_tables` trains every row whose model is registered when it runs, one
run folder per named config (`<output-dir>/<name>`); rows whose model is not
registered are reported as "not implemented", never skipped silently.
Running again resumes unfinished runs and skips finished ones through the
trainer's own resume logic. Table 2 is counted, not trained (`count_splits`).

TensorFlow is imported only when a run starts (or the registry is read).
"""

import dataclasses
import gc
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from crisis_keras.training.config import TrainConfig
from experiments.spec import METRICS, TABLE_2, TABLES, PaperTable, row_keys, select_rows

SPLIT_COUNTS_FILE = "table2-split-counts.json"


@dataclasses.dataclass
class RunOutcome:
    name: str
    table: int
    row: str
    model: str
    run_dir: Path
    # planned | not implemented | trained | composed | resumed | already finished | shared | failed
    status: str
    metrics: Optional[Dict] = None
    message: str = ""


def registered_models() -> frozenset:
    from crisis_keras.models import model_names  # imports TensorFlow

    return frozenset(model_names())


def read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def run_state(run_dir: Path) -> Dict:
    return read_json(run_dir / "checkpoint" / "state.json") or {}


def _format_config(config: TrainConfig) -> str:
    defaults = TrainConfig().to_dict()
    values = config.to_dict()
    first = ["task", "setting"] + (["experiment"] if config.setting == "C" else []) + ["model"]
    parts = [f"{k}={values[k]}" for k in first]
    parts += [f"{k}={v}" for k, v in values.items()
              if k not in first and k not in ("output_dir", "run_name") and v != defaults[k]]
    return " ".join(parts)


# Rows that cannot train on a frozen-backbone feature cache, and why.
NOT_ON_FEATURES = {
    "mmbt": "MMBT feeds image regions into BERT's token sequence; fine-tune it "
            "without --features",
}


def _not_on_features(model: str, features_dir, registered) -> str:
    """Why `model` cannot train on the cache in `features_dir` ("" if it can)."""
    if not features_dir or model not in registered:
        return ""
    if model in NOT_ON_FEATURES:
        return NOT_ON_FEATURES[model]
    from crisis_keras.features.run import feature_model_overrides
    from crisis_keras.features.store import FeatureStore
    from crisis_keras.models import build_model
    from crisis_keras.models.crisis_model import model_modalities

    store = FeatureStore(features_dir)
    head = build_model(model, 2, **feature_model_overrides(store))  # no backbone: fast
    lacking = [m for m in model_modalities(head) if m not in store.modalities]
    if lacking:
        return (f"the cache {features_dir} holds no {' or '.join(lacking)} features "
                f"(it has {', '.join(store.modalities)})")
    return ""


def with_feature_cache_backbones(overrides: Dict) -> Dict:
    """With `features_dir`, the backbone fields not given default to the cache's."""
    if not overrides.get("features_dir"):
        return overrides
    from crisis_keras.train import fill_from_feature_cache

    return fill_from_feature_cache(dict(overrides), {"--" + k.replace("_", "-") for k in overrides})


def run_table(table: PaperTable, *, overrides: Dict, output_dir, rows=None, columns=None,
              dry_run=False, stop_on_error=False, registered=None, out=print,
              handled: Optional[Dict[str, str]] = None) -> List[RunOutcome]:
    """Train (or plan) the named configs of `table`; returns one outcome each.

    `overrides` are TrainConfig fields (data_dir, epochs, ...); `registered`
    the registered model names (default: the registry, read now); `handled`
    maps run folders already dealt with in this invocation to their config's
    name (runs shared between tables are trained once).
    """
    registered = registered_models() if registered is None else frozenset(registered)
    handled = {} if handled is None else handled
    selected = select_rows(table, rows)
    out(f"Table {table.number}: {table.caption}")
    outcomes = []
    for row in selected:
        if row.is_reference:
            out(f"  [reference]        {row.slug}: {row.label!r} is the paper's own "
                f"summary row; no run (the report compares it with the best of our "
                f"Tables {', '.join(map(str, row.best_of_tables))}).")
    from experiments.tune_sse import with_tuned_sse  # SSE rows: p0, rho tuned on dev

    for named in table.named_configs(selected, columns):
        config = named.train_config(output_dir=str(output_dir),
                                    **with_tuned_sse(named, overrides, output_dir))
        run_dir = config.run_dir()
        outcome = RunOutcome(named.name, table.number, named.row, named.model, run_dir, "planned")
        outcomes.append(outcome)
        label = f"{named.name}: {named.row!r} -> model {named.model}"
        reason = _not_on_features(named.model, config.features_dir, registered)
        if reason:
            outcome.status = "not on cached features"
            outcome.message = reason
            out(f"  [not on features]  {label}: {reason}")
            continue
        if named.model not in registered:
            outcome.status = "not implemented"
            outcome.message = f"model {named.model!r} is not registered"
            out(f"  [not implemented]  {label} (not registered; nothing to run)")
            continue
        shared = f" (shares the run of {named.shares_run_with})" if named.shares_run_with else ""
        fusion = _late_fusion_sources(table, named, config, overrides, output_dir)
        if fusion:
            shared += (f" (no training: the average of the runs of {fusion[0][0]} and "
                       f"{fusion[1][0]}, section 4.2)")
        if dry_run:
            out(f"  [implemented]      {label}{shared}\n"
                f"                     run: {run_dir}\n"
                f"                     config: {_format_config(config)}")
            continue
        key = str(run_dir.resolve())
        if key in handled:
            outcome.status = "shared"
            outcome.metrics = read_json(run_dir / "metrics.json")
            outcome.message = f"same run as {handled[key]}"
            out(f"  [shared]           {label}: same run as {handled[key]} ({run_dir})")
            continue
        handled[key] = named.name
        state = run_state(run_dir)
        if state.get("finished"):
            outcome.status = "already finished"
        elif state.get("completed_epochs"):
            outcome.status = "resumed"
        else:
            outcome.status = "composed" if fusion else "trained"
        out(f"  [run]              {label}{shared} ({outcome.status}): {run_dir}")
        try:
            from crisis_keras.training.trainer import train

            announce = lambda message: out(f"      {message}")  # noqa: E731
            if fusion:
                from crisis_keras.training.late_fusion import fuse_runs

                fuse_runs(fusion[0][1], fusion[1][1], config, announce=announce)
            else:
                train(config, announce=announce)
        except Exception as error:  # noqa: BLE001 (one row's failure must not stop the others)
            outcome.status = "failed"
            outcome.message = f"{type(error).__name__}: {error}"
            out(f"  [failed]           {label}: {outcome.message}")
            if stop_on_error:
                raise
        else:
            outcome.metrics = read_json(run_dir / "metrics.json")
        finally:
            _release_memory()
    return outcomes


# Setting B's Score Fusion (section 4.2): the average of the same column's
# image-only and text-only runs (`crisis_keras/training/late_fusion.py`).
_LATE_FUSION = {"score_fusion": ("densenet", "bert")}


def _late_fusion_sources(table: PaperTable, named, config: TrainConfig, overrides: Dict,
                         output_dir):
    """((name, run dir) of the image run, same of the text run) when `named`
    is composed from them (Setting B, `setting_b_unimodal` own labels), else
    None (it trains like any row)."""
    if (named.model not in _LATE_FUSION or config.setting != "B"
            or config.setting_b_unimodal not in (None, "own_labels")):
        return None
    sources = []
    for model in _LATE_FUSION[named.model]:
        found = [n for n in table.named_configs(columns=[named.column]) if n.model == model]
        if not found:
            raise ValueError(f"Table {table.number} has no {model!r} row in column "
                             f"{named.column!r} for {named.name} to average.")
        run_dir = found[0].train_config(output_dir=str(output_dir), **overrides).run_dir()
        sources.append((found[0].name, run_dir))
    return tuple(sources)


def _release_memory():
    if "keras" in sys.modules:
        import keras

        keras.backend.clear_session()
    gc.collect()


def _setting_c_pools(data, experiment: int) -> Dict[str, int]:
    """Setting C's training pairs before the 15% dev hold-out, for every reading."""
    from crisis_keras.data.crisismmd import read_splits
    from crisis_keras.data.settings import SETTING_C_READINGS, setting_c_pool

    frames = read_splits(data.data_dir, data.task, image_root=data.image_root)
    return {r: len(setting_c_pool(frames, data.task, experiment, r)[0]) for r in SETTING_C_READINGS}


def count_splits(overrides: Dict, out=print) -> Dict:
    """Table 2 for our data: pairs per split, for every row of `TABLE_2`."""
    from crisis_keras.data.crisismmd import load_crisismmd

    data_dir = overrides.get("data_dir")
    defaults = TrainConfig()
    counts = {"data_dir": str(data_dir), "rows": {}}
    for row in TABLE_2.rows:
        try:
            data = load_crisismmd(
                data_dir, row.task, setting=row.setting,
                image_root=overrides.get("image_root"),
                humanitarian_labels=overrides.get("humanitarian_labels",
                                                  defaults.humanitarian_labels),
                setting_c_experiment=row.experiment or 3,
                seed=overrides.get("seed", defaults.seed),
                setting_c_reading=overrides.get("setting_c_reading", defaults.setting_c_reading),
                split="official" if row.setting == "C" else overrides.get("split", defaults.split),
            )
            entry = {s: len(data.splits[s]) if s in data.splits else None
                     for s in ("train", "dev", "test")}
            if row.setting == "C":
                entry["pool_by_reading"] = _setting_c_pools(data, row.experiment)
        except Exception as error:  # noqa: BLE001
            entry = {"error": f"{type(error).__name__}: {error}"}
        counts["rows"][row.key] = entry
        out(f"  {row.key}: {entry}")
    return counts


def run_tables(numbers: Sequence[int], *, overrides: Dict, output_dir, rows=None, columns=None,
               dry_run=False, stop_on_error=False, registered=None, out=print) -> List[RunOutcome]:
    outcomes: List[RunOutcome] = []
    handled: Dict[str, str] = {}
    if not dry_run and overrides.get("distribute", "none") != "none":
        # --distribute: every run of this process trains under one strategy, created
        # before any TensorFlow op (MultiWorkerMirroredStrategy must come first);
        # with multi-worker, every worker runs this same command.
        from crisis_keras.training.distribute import strategy_for

        strategy_for(overrides["distribute"])
    if rows:
        known = {k for n in numbers if n in TABLES for k in row_keys(TABLES[n])}
        unknown = [k for k in rows if k.lower() not in known]
        if unknown:
            raise SystemExit(f"unknown row(s) {unknown} for table(s) {list(numbers)}; "
                             f"rows: {sorted(known)}")
    if registered is None and any(n in TABLES for n in numbers):
        registered = registered_models()
    for number in numbers:
        if number == 2:
            out(f"Table 2: {TABLE_2.caption}")
            if dry_run:
                out("  [count]            split sizes of every setting (no training)")
                continue
            counts = count_splits(overrides, out=out)
            path = Path(output_dir) / SPLIT_COUNTS_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")
            out(f"  wrote {path}")
            continue
        table = TABLES[number]
        if rows and not select_rows(table, rows):
            continue
        outcomes += run_table(table, overrides=overrides, output_dir=output_dir, rows=rows,
                              columns=columns, dry_run=dry_run, stop_on_error=stop_on_error,
                              registered=registered, out=out, handled=handled)
    return outcomes


def summarize(outcomes: Sequence[RunOutcome], out=print) -> None:
    if not outcomes:
        return
    out("\nSummary (ours; test split):")
    for o in outcomes:
        test = (o.metrics or {}).get("test")
        numbers = ("  acc {:.2f}  macro F1 {:.2f}  weighted F1 {:.2f}".format(
            *(100 * test[m] for m in METRICS)) if test else "")
        out(f"  {o.name:55s} {o.status:16s}{numbers}")
    missing = sorted({o.model for o in outcomes if o.status == "not implemented"})
    if missing:
        out(f"Not implemented (not registered): {', '.join(missing)}")
    for o in outcomes:
        if o.status == "failed":
            out(f"FAILED {o.name}: {o.message}")
