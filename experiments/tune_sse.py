"""SSE's p0 and rho tuned on the dev set (paper, section 4.5).

"We select rho and p0 respectively in the range of rho in [10, 20000] and
p0 in [0, 1]", with cross-validation on the dev set; Setting C, which has no
dev set, tunes "on 15% of the training samples". `tune_sse` trains one model
(default `sse_cross`) per grid point, keeps the point of highest dev macro F1
(ties: lower dev loss, then grid order), writes the whole grid as markdown and
a heat map, and records the choice in `<output-dir>/tuned-sse.json`, where
`paper_tables.py run` picks it up for every row whose model uses SSE
(`with_tuned_sse`) unless `--sse-p0` / `--sse-rho` are given (a value given on
the command line wins over the tuned one, field by field).

In this code base (`crisis_keras/layers/sse.py`, eq. 9-10) p0 is the
probability that a sample's features leave it for another sample's (eq. 10:
it keeps them with 1 - p0), and rho is how much likelier a same-class partner
is than an other-class one (eq. 9), partners being the other samples of the
batch. Default grid (our choice; the paper gives only the ranges):

- p0 in 0, 0.1, 0.25, 0.5, 1. p0 = 0 is SSE switched off (the layer is the
  identity: the network of Table 8's "- SSE"), so rho is unused there and that
  row of the grid is one run, not one per rho. p0 = 1, the range's other end,
  moves one side (image or text, equal chance) of every training pair to
  another sample: the model never trains on an original pair, only on pairs
  re-drawn mostly within the class (Setting B's forced transition, applied to
  all). It stays in the grid as the end of the paper's range.
- rho in 10, 67, 450, 3000, 20000: geometric over [10, 20000] (ratio
  2000^(1/4), rounded). With n same-class samples among the 31 others of a
  batch of 32, a leaving sample lands on a same-class one with probability
  n rho / (n rho + 31 - n): for n = 15 (two balanced classes) 0.90, 0.98,
  0.998, ... and for n = 6 (five classes) 0.71, 0.94, 0.99, ...; the low end
  of the range is where rho matters.

Runs live in `<output-dir>/tune-sse/<key>/p0-<p0>-rho-<rho>-seed<N>` (key
e.g. `informative-settingA`, `humanitarian-settingC2`); the trainer's resume
logic skips finished points and resumes unfinished ones on a rerun. Tuning
runs use `--epochs 10` unless given, with the usual early stopping.
"""

import dataclasses
import gc
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from crisis_keras.training.config import TrainConfig
from experiments.runner import _not_on_features, read_json, run_state, with_feature_cache_backbones
from experiments.spec import SETTING_C_NOTE

DEFAULT_MODEL = "sse_cross"
DEFAULT_P0 = (0.0, 0.1, 0.25, 0.5, 1.0)
DEFAULT_RHO = (10.0, 67.0, 450.0, 3000.0, 20000.0)
DEFAULT_EPOCHS = 10
TUNE_DIR = "tune-sse"
TUNED_FILE = "tuned-sse.json"
SELECTION = "dev macro F1 (ties: lower dev loss, then grid order)"
# Throughput for the time estimate: head training on cached features
# (bench/feature_head.py: 1,097 pairs/s on 2 cores) and end-to-end fine-tuning
# (README: about 3 pairs/s); per epoch about 1 s more for the dev pass and
# checkpoints, per run a few seconds to build the model.
PAIRS_PER_SECOND = {"features": 1000.0, "fine-tuning": 3.0}
SECONDS_PER_EPOCH = 1.0
SECONDS_PER_RUN = 5.0


@dataclasses.dataclass(frozen=True)
class GridPoint:
    """One (p0, rho); rho is None when p0 = 0 (SSE off, rho unused)."""

    p0: float
    rho: Optional[float]

    def run_name(self, seed: int) -> str:
        rho = "any" if self.rho is None else f"{self.rho:g}"
        return f"p0-{self.p0:g}-rho-{rho}-seed{seed}"


def grid_points(p0s: Sequence[float], rhos: Sequence[float]) -> List[GridPoint]:
    """The grid in p0-major order; p0 = 0 gives one point whatever the rhos."""
    for p0 in p0s:
        if not 0.0 <= p0 <= 1.0:
            raise ValueError(f"p0 must be in [0, 1] (eq. 10), got {p0}.")
    for rho in rhos:
        if not rho >= 1.0 or math.isinf(rho):
            raise ValueError(f"rho must be finite and >= 1 (eq. 9), got {rho}.")
    points = []
    for p0 in dict.fromkeys(float(p) for p in p0s):
        for rho in ([None] if p0 == 0.0 else dict.fromkeys(float(r) for r in rhos)):
            points.append(GridPoint(p0, rho))
    return points


def tuning_key(task: str, setting: str, experiment: Optional[int] = None,
               model: str = DEFAULT_MODEL) -> str:
    """`informative-settingA`, `humanitarian-settingC2`, `...-<model>` for other models."""
    key = f"{task}-setting{setting}" + (f"{experiment}" if setting == "C" else "")
    return key if model == DEFAULT_MODEL else f"{key}-{model}"


def uses_sse(model: str) -> bool:
    """Whether the registered `model`'s config applies SSE (no backbone is built)."""
    from crisis_keras.models.registry import resolve_config  # imports TensorFlow

    try:
        return bool(resolve_config(model).sse)
    except ValueError:  # not registered
        return False


# ---- Where `run` finds the chosen values -------------------------------------


def read_tuned(output_dir) -> Dict:
    return read_json(Path(output_dir) / TUNED_FILE) or {}


def tuned_entry(output_dir, task, setting, experiment, model) -> Optional[Tuple[str, Dict]]:
    """(key, entry) tuned for this model, else for `sse_cross`, else None."""
    tuned = read_tuned(output_dir)
    for name in dict.fromkeys((model, DEFAULT_MODEL)):
        key = tuning_key(task, setting, experiment, name)
        if key in tuned:
            return key, tuned[key]
    return None


def with_tuned_sse(named, overrides: Dict, output_dir) -> Dict:
    """`overrides` plus the tuned `sse_p0` / `sse_rho` of `named`'s task and
    setting when its model uses SSE; values in `overrides` (given on the
    command line) win. Unchanged without `tuned-sse.json`."""
    if {"sse_p0", "sse_rho"} <= set(overrides):
        return overrides
    found = tuned_entry(output_dir, named.task, named.setting, named.experiment, named.model)
    if found is None or not uses_sse(named.model):
        return overrides
    entry = found[1]
    values = dict(overrides)
    values.setdefault("sse_p0", entry["p0"])
    if entry["rho"] is not None:
        values.setdefault("sse_rho", entry["rho"])
    return values


def describe_sse(named, run_config: Dict, output_dir) -> Tuple[str, set]:
    """For the report: (which p0 / rho an SSE row's run used and where they came
    from, the fields that are tuned values); ("", set()) for other models."""
    if not uses_sse(named.model):
        return "", set()
    from crisis_keras.models.registry import resolve_config

    defaults = resolve_config(named.model)
    p0, rho = run_config.get("sse_p0"), run_config.get("sse_rho")
    used = (f"SSE p0={defaults.sse_p0 if p0 is None else p0:g}, "
            f"rho={defaults.sse_rho if rho is None else rho:g}")
    found = tuned_entry(output_dir, named.task, named.setting, named.experiment, named.model)
    if found is not None:
        key, entry = found
        tuned = {"sse_p0": entry["p0"], "sse_rho": entry["rho"]}
        matching = {k for k, v in tuned.items() if v is not None and run_config.get(k) == v}
        if matching == {k for k, v in tuned.items() if v is not None}:
            off = " (SSE off: p0 = 0 won)" if entry["p0"] == 0 else ""
            return (f"{used}: tuned on dev by tune-sse{off} ({TUNED_FILE} `{key}`, "
                    f"tuned with {entry['model']})", matching)
        return (f"{used}: set on the command line, not the tuned values ({TUNED_FILE} "
                f"`{key}`)", set())
    if p0 is None and rho is None:
        return f"{used}: the model defaults, not tuned (no {TUNED_FILE} entry)", set()
    return f"{used}: set on the command line, not tuned", set()


# ---- The grid ----------------------------------------------------------------


@dataclasses.dataclass
class Cell:
    """A grid point's runs (one per seed) and their dev numbers (means)."""

    point: GridPoint
    run_dirs: List[Path]
    status: str  # finished | unfinished | not run | failed
    macro_f1: Optional[float] = None
    accuracy: Optional[float] = None
    loss: Optional[float] = None


def _best_epoch_loss(history: Sequence[Dict], select_by: Optional[str]) -> float:
    """Dev loss of the epoch the trainer kept (lowest dev loss, or with
    `select_by="macro_f1"` the first epoch of highest dev macro F1)."""
    history = [h for h in history if "val_loss" in h]
    if not history:
        return math.inf
    if select_by == "macro_f1" and all("val_macro_f1" in h for h in history):
        return max(history, key=lambda h: h["val_macro_f1"])["val_loss"]
    return min(h["val_loss"] for h in history)


def run_numbers(run_dir: Path) -> Optional[Dict]:
    """Dev macro F1, accuracy (metrics.json) and loss (the kept epoch's) of a
    finished run, else None."""
    metrics = read_json(run_dir / "metrics.json")
    state = run_state(run_dir)
    if not metrics or "dev" not in metrics or not state.get("finished"):
        return None
    select_by = (read_json(run_dir / "config.json") or {}).get("select_by")
    return {"macro_f1": metrics["dev"]["macro_f1"], "accuracy": metrics["dev"]["accuracy"],
            "loss": _best_epoch_loss(state.get("history", []), select_by),
            "epochs": state.get("completed_epochs")}


def read_cell(point: GridPoint, run_dirs: List[Path], failed=()) -> Cell:
    numbers = [run_numbers(d) for d in run_dirs]
    if all(numbers):
        mean = {k: sum(n[k] for n in numbers) / len(numbers)
                for k in ("macro_f1", "accuracy", "loss")}
        return Cell(point, run_dirs, "finished", **mean)
    if any(d in failed for d in run_dirs):
        return Cell(point, run_dirs, "failed")
    started = any(run_state(d).get("completed_epochs") for d in run_dirs)
    return Cell(point, run_dirs, "unfinished" if started else "not run")


def select(cells: Sequence[Cell]) -> Optional[Cell]:
    """Highest dev macro F1; ties: lower dev loss, then the earlier grid point."""
    finished = [c for c in cells if c.status == "finished"]
    return max(finished, key=lambda c: (c.macro_f1, -c.loss)) if finished else None


def point_config(base: Dict, point: GridPoint, seed: int, group_dir: Path) -> TrainConfig:
    values = dict(base, sse_p0=point.p0, seed=seed, output_dir=str(group_dir),
                  run_name=point.run_name(seed))
    if point.rho is not None:
        values["sse_rho"] = point.rho
    return TrainConfig.from_dict(values)


def dev_split_note(setting: str) -> str:
    if setting == "C":
        return ("Dev split: " + SETTING_C_NOTE + " tune-sse selects on that held-out 15% "
                "(split seed 0 unless --split-seed is given: the split of the table's seed-0 "
                "runs); the California wildfires test split is never read for the choice.")
    return f"Dev split: Setting {setting}'s dev set (the test split is never read for the choice)."


def estimate_seconds(configs: Sequence[TrainConfig], out=print) -> float:
    """Upper bound (early stopping can end runs sooner) for `configs`' runs."""
    if not configs:
        return 0.0
    from crisis_keras.training.trainer import load_data

    first = configs[0]
    data = load_data(first)
    train = len(data.splits["train"])
    if first.max_train_examples:
        train = min(train, first.max_train_examples)
    dev = len(data.splits.get("dev", ()))
    mode = "features" if first.features_dir else "fine-tuning"
    rate = PAIRS_PER_SECOND[mode]
    per_run = first.epochs * ((train + dev / 3) / rate + SECONDS_PER_EPOCH) + SECONDS_PER_RUN
    total = per_run * len(configs)
    out(f"  estimate: {len(configs)} run(s) to train x up to {first.epochs} epochs x {train} "
        f"training + {dev} dev pairs at ~{rate:g} pairs/s ({mode}) = about "
        f"{per_run:.0f} s per run, {total / 60:.1f} min in all (less if early stopping ends runs)")
    return total


def _release_memory():
    if "keras" in sys.modules:
        import keras

        keras.backend.clear_session()
    gc.collect()


def tune_sse(overrides: Dict, *, task: str, output_dir, results_dir, setting: str = "A",
             experiment: int = 3, model: str = DEFAULT_MODEL, p0s=DEFAULT_P0, rhos=DEFAULT_RHO,
             seeds=(0,), dry_run=False, stop_on_error=False, out=print) -> Optional[Dict]:
    """Train the grid (resuming/skipping finished points), write the report and
    `tuned-sse.json`; returns the chosen entry (None on a dry run, or when a
    grid point has not finished: then nothing is chosen)."""
    clash = sorted({"sse_p0", "sse_rho", "seed", "model", "task", "setting", "experiment",
                    "run_name", "output_dir"} & set(overrides))
    if clash:
        raise ValueError(f"tune-sse sets {clash} itself (use --p0, --rho, --seeds, --model, ...).")
    if not uses_sse(model):
        raise ValueError(f"model {model!r} does not use SSE (registry config sse=False); "
                         "nothing to tune.")
    overrides = with_feature_cache_backbones(dict(overrides))
    lacking = _not_on_features(model, overrides.get("features_dir"), {model})
    if lacking:
        raise ValueError(f"{model} cannot train on this cache: {lacking}.")
    base = dict(overrides, task=task, setting=setting, experiment=experiment, model=model)
    base.setdefault("epochs", DEFAULT_EPOCHS)
    if setting == "C" or base.get("data_format") == "medic":
        # Setting C's held-out 15% (and MEDIC's dev split) is drawn with the
        # split seed: fix it to seed 0's, the split of the table's seed-0 runs.
        base.setdefault("split_seed", 0)
    key = tuning_key(task, setting, experiment, model)
    group_dir = Path(output_dir) / TUNE_DIR / key
    points = grid_points(p0s, rhos)
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    configs = {(p, s): point_config(base, p, s, group_dir) for p in points for s in seeds}

    rho_values = sorted({p.rho for p in points if p.rho is not None})
    off = " (p0 = 0: one point, rho unused)" if any(p.rho is None for p in points) else ""
    out(f"tune-sse {key}: model {model}, {len({p.p0 for p in points})} p0 x {len(rho_values)} "
        f"rho values = {len(points)} grid point(s){off} x {len(seeds)} seed(s), "
        f"{base['epochs']} epochs max; selected by {SELECTION}.")
    out(f"  p0: {', '.join(f'{p:g}' for p in dict.fromkeys(p.p0 for p in points))}; "
        f"rho: {', '.join(f'{r:g}' for r in rho_values)}")
    out(f"  {dev_split_note(setting)}")
    out(f"  runs: {group_dir}")
    todo = [c for c in configs.values() if not run_state(c.run_dir()).get("finished")]
    estimate_seconds(todo, out=out)
    if dry_run:
        for (point, seed), config in configs.items():
            out(f"  [planned] {config.run_dir()}")
        return None

    failed = set()
    for (point, seed), config in configs.items():
        out(f"  [run] p0={point.p0:g} rho={'any' if point.rho is None else f'{point.rho:g}'} "
            f"seed {seed}: {config.run_dir()}")
        try:
            from crisis_keras.training.trainer import train

            train(config, announce=lambda message: out(f"      {message}"))
        except Exception as error:  # noqa: BLE001 (one point's failure must not stop the grid)
            failed.add(config.run_dir())
            out(f"  [failed] {config.run_dir()}: {type(error).__name__}: {error}")
            if stop_on_error:
                raise
        finally:
            _release_memory()

    cells = [read_cell(p, [configs[(p, s)].run_dir() for s in seeds], failed) for p in points]
    complete = all(c.status == "finished" for c in cells)
    chosen = select(cells) if complete else None
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    md_path, png_path = results_dir / f"tune-sse-{key}.md", results_dir / f"tune-sse-{key}.png"
    entry = None
    if chosen is not None:
        entry = {
            "p0": chosen.point.p0, "rho": chosen.point.rho, "model": model, "task": task,
            "setting": setting, "experiment": experiment if setting == "C" else None,
            "selected_by": SELECTION, "dev_macro_f1": chosen.macro_f1,
            "dev_accuracy": chosen.accuracy, "dev_loss": chosen.loss, "seeds": seeds,
            "epochs": base["epochs"], "grid": {"p0": sorted({p.p0 for p in points}),
                                               "rho": rho_values},
            "runs": str(group_dir), "report": str(md_path),
            "data": {k: base.get(k) for k in ("data_dir", "events", "features_dir")},
        }
        write_tuned(output_dir, key, entry)
    save_heat_map(png_path, cells, chosen, title=f"tune-sse {key}: dev macro F1 (%)")
    md_path.write_text(render_grid(key, model, cells, chosen, seeds, base, png_path.name,
                                   output_dir))
    out(f"  wrote {md_path} and {png_path.name}")
    if chosen is None:
        missing = [c for c in cells if c.status != "finished"]
        statuses = ", ".join(sorted({c.status for c in missing}))
        out(f"  {len(missing)} grid point(s) not finished ({statuses}): nothing chosen, "
            f"{TUNED_FILE} not updated.")
    else:
        rho = "unused (SSE off)" if chosen.point.rho is None else f"{chosen.point.rho:g}"
        out(f"  chosen: p0={chosen.point.p0:g}, rho={rho} (dev macro F1 "
            f"{100 * chosen.macro_f1:.2f}, accuracy {100 * chosen.accuracy:.2f}); "
            f"{Path(output_dir) / TUNED_FILE} `{key}`; `paper_tables.py run --output-dir "
            f"{output_dir}` uses it for SSE rows")
    return entry


def write_tuned(output_dir, key: str, entry: Dict) -> Path:
    from crisis_keras.evaluation.reports import write_json_atomic

    path = Path(output_dir) / TUNED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tuned = read_tuned(output_dir)
    tuned[key] = entry
    write_json_atomic(path, tuned)
    return path


# ---- Report ------------------------------------------------------------------


def _p0_label(p0: float) -> str:
    return "0 (SSE off; rho unused)" if p0 == 0 else f"{p0:g}"


def _cell_text(cell: Cell) -> str:
    if cell.status != "finished":
        return cell.status
    return f"{100 * cell.macro_f1:.2f} (acc {100 * cell.accuracy:.2f})"


def _matrix(cells: Sequence[Cell]):
    p0s = list(dict.fromkeys(c.point.p0 for c in cells))
    rhos = sorted({c.point.rho for c in cells if c.point.rho is not None})
    lookup = {}
    for c in cells:
        for rho in (rhos if c.point.rho is None else [c.point.rho]):
            lookup[(c.point.p0, rho)] = c
    return p0s, rhos, lookup


def render_grid(key, model, cells, chosen, seeds, base, png_name, output_dir) -> str:
    p0s, rhos, lookup = _matrix(cells)
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else (
        f"mean over seeds {', '.join(map(str, seeds))}")
    lines = [
        f"# SSE p0 and rho tuned on dev: `{key}`",
        "",
        "Section 4.5 of the paper: \"We select rho and p0 respectively in the range of "
        "rho in [10, 20000] and p0 in [0, 1]\", on the dev set. One "
        f"`{model}` run per grid point ({seed_text}, up to {base['epochs']} epochs with early "
        f"stopping), selected by {SELECTION}. Numbers are dev-set percentages from each "
        "run's `metrics.json` (the epoch the trainer kept: lowest dev loss by default). "
        "p0 = probability that a sample's image or text features move to another sample "
        "of the batch (eq. 10); rho = same-class / other-class odds of the partner (eq. 9).",
        "",
        dev_split_note(base["setting"]),
        "",
        "Runs trained on: " + ", ".join(
            f"{k}={base[k]}" for k in ("data_dir", "events", "features_dir", "text_backbone",
                                       "image_backbone", "image_weights", "max_train_examples")
            if base.get(k) is not None) + ".",
        "",
    ]
    if chosen is not None:
        rho = "unused (SSE off)" if chosen.point.rho is None else f"{chosen.point.rho:g}"
        lines += [f"**Chosen: p0 = {chosen.point.p0:g}, rho = {rho}** (dev macro F1 "
                  f"{100 * chosen.macro_f1:.2f}, accuracy {100 * chosen.accuracy:.2f}, loss "
                  f"{chosen.loss:.4f}), written to `{Path(output_dir) / TUNED_FILE}` as `{key}`; "
                  "`paper_tables.py run` with this `--output-dir` trains the SSE rows of this "
                  "task and setting with them unless `--sse-p0` / `--sse-rho` are given.", ""]
    else:
        lines += ["**Nothing chosen**: not every grid point has finished; rerun the same "
                  "command (finished points are skipped).", ""]
    lines += ["## Dev macro F1 (accuracy), percent", "",
              "| p0 \\ rho | " + " | ".join(f"{r:g}" for r in rhos) + " |",
              "| --- | " + " | ".join("---:" for _ in rhos) + " |"]
    for p0 in p0s:
        cells_text = []
        for rho in rhos:
            cell = lookup[(p0, rho)]
            text = _cell_text(cell)
            cells_text.append(f"**{text}** (chosen)" if cell is chosen else text)
        lines.append(f"| {_p0_label(p0)} | " + " | ".join(cells_text) + " |")
    lines += ["", f"![dev macro F1 over the grid]({png_name})", "", "## Every run", "",
              "| p0 | rho | seed | dev macro F1 | dev accuracy | dev loss | epochs | run |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for cell in cells:
        for run_dir in cell.run_dirs:
            n = run_numbers(run_dir)
            seed = run_dir.name.rsplit("-seed", 1)[1]
            rho = "any" if cell.point.rho is None else f"{cell.point.rho:g}"
            values = ([f"{100 * n['macro_f1']:.2f}", f"{100 * n['accuracy']:.2f}",
                       f"{n['loss']:.4f}", str(n["epochs"])] if n
                      else [cell.status if cell.status != "finished" else "not run"] * 4)
            lines.append(f"| {cell.point.p0:g} | {rho} | {seed} | " + " | ".join(values)
                         + f" | `{run_dir}` |")
    return "\n".join(lines) + "\n"


def save_heat_map(path, cells: Sequence[Cell], chosen: Optional[Cell], title: str) -> None:
    """Dev macro F1 over p0 x rho as a PNG (as `evaluation/reports.py` draws its
    confusion matrices); the chosen cell is framed."""

    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    from matplotlib import patches
    from matplotlib import pyplot as plt

    p0s, rhos, lookup = _matrix(cells)
    values = np.full((len(p0s), len(rhos)), np.nan)
    for (i, p0), (j, rho) in ((a, b) for a in enumerate(p0s) for b in enumerate(rhos)):
        cell = lookup[(p0, rho)]
        if cell.status == "finished":
            values[i, j] = 100 * cell.macro_f1
    fig, ax = plt.subplots(figsize=(1.3 * len(rhos) + 3.0, 0.8 * len(p0s) + 2.0))
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax, label="dev macro F1 (%)")
    ax.set_xticks(range(len(rhos)), [f"{r:g}" for r in rhos])
    ax.set_yticks(range(len(p0s)), [_p0_label(p) for p in p0s])
    ax.set_xlabel("rho (eq. 9)")
    ax.set_ylabel("p0 (eq. 10)")
    ax.set_title(title)
    finite = values[np.isfinite(values)]
    middle = (finite.max() + finite.min()) / 2 if finite.size else 0.0
    for (i, j), value in np.ndenumerate(values):
        cell = lookup[(p0s[i], rhos[j])]
        text = cell.status if cell.status != "finished" else (
            f"{value:.1f}\nacc {100 * cell.accuracy:.1f}")
        dark = np.isfinite(value) and value <= middle  # viridis is dark at the low end
        ax.text(j, i, text, ha="center", va="center", fontsize=8,
                color="white" if dark else "black")
        if cell is chosen:
            ax.add_patch(patches.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False,
                                           edgecolor="red", linewidth=2.5))
    from crisis_keras.evaluation.reports import save_figure_atomic

    save_figure_atomic(fig, path)


# ---- Command line (wired in experiments/paper_tables.py) ----------------------


def add_arguments(parser) -> None:
    """tune-sse's own options (the TrainConfig overrides are added by the caller)."""
    parser.add_argument("--task", required=True,
                        choices=("informative", "humanitarian", "severity", "damage"))
    parser.add_argument("--setting", default="A", choices=("A", "B", "C"),
                        help="data setting (default A); C tunes on the held-out 15%% of "
                        "the training tweets (section 4.5)")
    parser.add_argument("--experiment", type=int, default=3, choices=(1, 2, 3),
                        help="Setting C's training set (Table 7; default 3)")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="a registered model whose config uses SSE (default %(default)s)")
    parser.add_argument("--p0", type=float, nargs="+", default=list(DEFAULT_P0),
                        help="p0 values (default %(default)s; 0 = SSE off, one run)")
    parser.add_argument("--rho", type=float, nargs="+", default=list(DEFAULT_RHO),
                        help="rho values (default %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="one run per seed and grid point; cells are their means")
    parser.add_argument("--results-dir", default=None,
                        help="where tune-sse-<key>.md/.png go (default: experiments/results)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the grid, the run folders and the time estimate only")
    parser.add_argument("--stop-on-error", action="store_true")


def main(args, overrides: Dict, *, output_dir, results_dir, out=print) -> int:
    if not args.dry_run and overrides.get("distribute", "none") != "none":
        from crisis_keras.training.distribute import strategy_for

        strategy_for(overrides["distribute"])  # before any TensorFlow op (runner.run_tables)
    entry = tune_sse(overrides, task="severity" if args.task == "damage" else args.task,
                     setting=args.setting, experiment=args.experiment, model=args.model,
                     p0s=args.p0, rhos=args.rho, seeds=args.seeds, output_dir=output_dir,
                     results_dir=args.results_dir or results_dir, dry_run=args.dry_run,
                     stop_on_error=args.stop_on_error, out=out)
    return 0 if (entry is not None or args.dry_run) else 1
