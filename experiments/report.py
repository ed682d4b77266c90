"""The markdown report of the paper's tables: the paper's numbers next to ours.

`write_reports` writes `tableN.md`. Our numbers come only from the
`metrics.json` of finished runs (`experiments/runner.py`); anything else
shows "not run", "unfinished", "not implemented" or "mismatch". A `*` marks
runs whose configuration differs from the paper's (the TrainConfig defaults).
SSE rows say under "Runs" which p0 and rho their run used and whether these
were tuned on dev (`tune_sse.py`; tuned values are the paper's procedure, no `*`).
"""

import dataclasses
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from crisis_keras.training.config import TrainConfig
from experiments.runner import SPLIT_COUNTS_FILE, read_json, registered_models, run_state
from experiments.spec import (
    METRICS,
    PAPER,
    TABLE_2,
    TABLES,
    Column,
    NamedConfig,
    PaperTable,
)
from experiments.tune_sse import describe_sse

METRIC_HEADERS = {"accuracy": "Acc", "macro_f1": "Macro F1", "weighted_f1": "Weighted F1"}

# Written by crisis_keras/training/late_fusion.py in a composed Score Fusion run.
_LATE_FUSION_FILE = "late_fusion.json"
# TrainConfig fields that say where a run lives rather than what it is.
_BOOKKEEPING = {"data_dir", "image_root", "output_dir", "run_name", "allow_outside_root"}


def _percent(value) -> str:
    return f"{100 * value:.2f}"


def _paper(value) -> str:
    return "-" if value is None else f"{value:.2f}"


@dataclasses.dataclass
class OurResult:
    status: str  # finished | not run | unfinished | not implemented | mismatch
    metrics: Optional[Dict] = None
    deviations: str = ""
    run_dir: Optional[Path] = None
    note: str = ""


def our_result(named: NamedConfig, output_dir, seed: int = 0,
               registered: Optional[frozenset] = None) -> OurResult:
    """Our numbers for a named config: only from a finished run's metrics.json."""
    run_dir = named.run_dir(output_dir, seed)
    metrics = read_json(run_dir / "metrics.json")
    config = read_json(run_dir / "config.json")
    if metrics is not None and config is not None:
        differing = {k: config.get(k) for k, v in named.fixed_fields().items()
                     if config.get(k) != v}
        if differing:
            return OurResult("mismatch", run_dir=run_dir,
                             note=f"{run_dir} holds another run ({differing})")
        defaults = TrainConfig().to_dict()
        # SSE rows: which p0 / rho; values tuned on dev (tune-sse) are the paper's procedure.
        sse_note, tuned = describe_sse(named, config, output_dir)
        deviations = ", ".join(
            f"{k}={config[k]}" for k in sorted(config)
            if k in defaults and k not in _BOOKKEEPING and k not in named.fixed_fields()
            and k not in tuned and config[k] != defaults[k])
        return OurResult("finished", metrics, deviations, run_dir, note=sse_note)
    if registered is not None and named.model not in registered:
        return OurResult("not implemented", run_dir=run_dir)
    state = run_state(run_dir)
    if state.get("completed_epochs"):
        total = (config or {}).get("epochs", "?")
        return OurResult("unfinished", run_dir=run_dir,
                         note=f"{state['completed_epochs']}/{total} epochs done")
    return OurResult("not run", run_dir=run_dir)


def _md_row(cells) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _slot_header(table: PaperTable, column: Column, split: str, metric: str) -> str:
    parts = [column.short, split.capitalize(), METRIC_HEADERS[metric]]
    return " ".join(p for p in parts if p)


def _seeds(seed) -> List[int]:
    return [int(seed)] if isinstance(seed, int) else [int(s) for s in seed]


def _mean_spread(values: Sequence[float]) -> str:
    """`mean ± sample standard deviation` in percent (n >= 2)."""
    mean = sum(values) / len(values)
    spread = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{100 * mean:.2f} ± {100 * spread:.2f}"


def _data_line(results: Dict[Tuple[str, str], "OurResult"]) -> List[str]:
    """What the finished runs trained on: data, events, backbones, feature cache."""
    fields = ("data_dir", "data_format", "events", "text_backbone", "image_backbone",
              "image_weights", "features_dir")
    seen = []
    for result in results.values():
        config = read_json(result.run_dir / "config.json") if result.run_dir else None
        if result.status != "finished" or not config:
            continue
        described = ", ".join(f"{k}={config[k]}" for k in fields if config.get(k) is not None)
        if described not in seen:
            seen.append(described)
    return [f"Runs trained on: {'; '.join(f'`{d}`' for d in seen)}.", ""] if seen else []


def render_table(table: PaperTable, output_dir, *, seed=0,
                 registered: Optional[frozenset] = None) -> str:
    """Markdown: per row, the paper's numbers and ours (finished runs only).

    `seed` is one seed, or several: then each cell is the mean ± standard
    deviation over the seeds' finished runs (a difference smaller than the
    spread is not a result).
    """
    seeds = _seeds(seed)
    seed = seeds[0]
    slots = table.slots()
    results: Dict[Tuple[str, str], OurResult] = {}
    by_seed: Dict[Tuple[str, str], List[OurResult]] = {}
    for named in table.named_configs():
        key = (named.row, named.column)
        by_seed[key] = [our_result(named, output_dir, s, registered) for s in seeds]
        results[key] = by_seed[key][0]

    lines = [
        f"# Table {table.number}: {table.caption}",
        "",
        f"**paper** = the numbers printed in Table {table.number} of {PAPER} "
        "(reference values, transcribed; '-' = not reported). **ours** = "
        f"`metrics.json` of finished runs under `{output_dir}`"
        + (f" (seed {seed})" if seed and len(seeds) == 1 else "")
        + (f", mean ± standard deviation over seeds {', '.join(map(str, seeds))}"
           if len(seeds) > 1 else "")
        + "; 'not run' = no finished run; * = a run whose configuration differs "
        "from the paper's (TrainConfig defaults), see Runs. All numbers in percent.",
        "",
    ] + _data_line(results)
    if any(c.title and c.short for c in table.columns):
        lines += ["Columns as printed: " + "; ".join(
            f"{c.short} = {c.title} (task {c.task}, Setting {c.setting}"
            + (f", experiment {c.experiment}" if c.experiment else "") + ")"
            for c in table.columns) + ".", ""]
    header = ["Model", "Registered model", "Numbers"] + [
        _slot_header(table, c, s, m) for c, s in slots for m in METRICS]
    lines.append(_md_row(header))
    lines.append(_md_row(["---"] * 3 + ["---:"] * (len(header) - 3)))
    for row in table.rows:
        paper_cells = [_paper(n.get(m)) for n in row.paper for m in METRICS]
        lines.append(_md_row([row.label, f"`{row.model}`" if row.model else "(reference)",
                              "paper"] + paper_cells))
        if row.is_reference:
            cells = []
            for column, split in slots:
                best = _best_of(row.best_of_tables, column.task, split, output_dir, seed)
                cells += [_percent(best[m]) if best.get(m) is not None else "not run"
                          for m in METRICS]
            tables = ", ".join(map(str, row.best_of_tables))
            lines.append(_md_row(["", "", f"ours (best of our Tables {tables})"] + cells))
            continue
        cells, statuses = [], []
        for column, split in slots:
            result = results[(row.label, column.key)]
            statuses.append(result.status)
            split_metrics = (result.metrics or {}).get(split)
            finished = [r for r in by_seed[(row.label, column.key)] if r.status == "finished"]
            runs = [m for m in ((r.metrics or {}).get(split) for r in finished) if m]
            if finished and not runs:
                cells += [f"no {split} split"] * len(METRICS)
            elif len(seeds) > 1 and len(runs) == len(seeds):
                cells += [_mean_spread([m[metric] for m in runs]) for metric in METRICS]
            elif len(seeds) > 1:
                cells += [f"{len(runs)}/{len(seeds)} seeds run"] * len(METRICS)
            elif result.status == "finished" and split_metrics:
                cells += [_percent(split_metrics[m]) for m in METRICS]
            else:
                cells += ["not run"] * len(METRICS)
        unique = sorted(set(statuses), key=statuses.index)
        label = "ours" if unique == ["finished"] else "ours: " + ", ".join(unique)
        if any((read_json(results[(row.label, c.key)].run_dir / "config.json") or {}).get("features_dir")
               for c in table.columns if results[(row.label, c.key)].run_dir):
            label += " (frozen backbones, cached features)"
        if any(results[(row.label, c.key)].deviations for c in table.columns):
            label += " *"
        lines.append(_md_row(["", "", label] + cells))

    lines += ["", "## Runs", ""]
    for named in table.named_configs():
        result = results[(named.row, named.column)]
        detail = result.status
        if result.status == "finished":
            detail += (f"; differs from the paper's configuration (TrainConfig defaults) in: "
                       f"{result.deviations}" if result.deviations
                       else "; TrainConfig defaults (the paper's configuration)")
        if result.note:
            detail += f"; {result.note}"
        fusion = read_json(result.run_dir / _LATE_FUSION_FILE) if result.run_dir else None
        if result.status == "finished" and fusion:
            detail += (f"; not trained: the mean of the probabilities of "
                       f"`{fusion['image']['run_dir']}` and `{fusion['text']['run_dir']}`")
        shared = f" (the run of {named.shares_run_with})" if named.shares_run_with else ""
        lines.append(f"- `{named.name}` -> `{result.run_dir}`{shared}: {detail}")
    lines += ["", "## Notes", ""]
    lines += [f"- {note}" for note in table.notes]
    lines += [f"- {row.label}: {row.note}" for row in table.rows if row.note]
    return "\n".join(lines) + "\n"


def _best_of(tables: Sequence[int], task: str, split: str, output_dir, seed: int) -> Dict:
    """Per-metric best of our finished `split` results of `task` in `tables`."""
    best: Dict[str, float] = {}
    for number in tables:
        for named in TABLES[number].named_configs():
            if named.task != task:
                continue
            result = our_result(named, output_dir, seed)
            values = (result.metrics or {}).get(split) if result.status == "finished" else None
            for metric in METRICS if values else ():
                best[metric] = max(best.get(metric, float("-inf")), values[metric])
    return best


def render_table2(output_dir) -> str:
    counts = read_json(Path(output_dir) / SPLIT_COUNTS_FILE)
    lines = [
        f"# Table 2: {TABLE_2.caption}",
        "",
        f"**paper** = the counts printed in Table 2 of {PAPER} ('-' = none). "
        f"**ours** = `{SPLIT_COUNTS_FILE}` under `{output_dir}` written by "
        "`paper_tables.py run --table 2`"
        + (f" from `{counts['data_dir']}`" if counts else "") + ".",
        "",
        _md_row(["Setting", "Row", "Task", "Numbers", "Training", "Dev", "Test"]),
        _md_row(["---"] * 4 + ["---:"] * 3),
    ]
    for row in TABLE_2.rows:
        lines.append(_md_row([row.setting, row.label, row.task, "paper", row.paper_train,
                              "-" if row.paper_dev is None else row.paper_dev, row.paper_test]))
        entry = (counts or {}).get("rows", {}).get(row.key)
        if entry is None:
            cells = ["not run"] * 3
        elif "error" in entry:
            cells = ["error"] * 3
        else:
            cells = ["absent" if entry[s] is None else entry[s] for s in ("train", "dev", "test")]
        lines.append(_md_row(["", "", "", "ours"] + cells))
    lines += ["", "## Notes", ""] + [f"- {note}" for note in TABLE_2.notes]
    errors = {k: v["error"] for k, v in (counts or {}).get("rows", {}).items() if "error" in v}
    lines += [f"- {key}: {message}" for key, message in errors.items()]
    return "\n".join(lines) + "\n"


def write_reports(numbers: Sequence[int], output_dir, results_dir, *, seed=0,
                  registered: Optional[frozenset] = None, out=print) -> List[Path]:
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    if registered is None and any(n != 2 for n in numbers):
        registered = registered_models()
    paths = []
    for number in numbers:
        text = (render_table2(output_dir) if number == 2 else
                render_table(TABLES[number], output_dir, seed=seed, registered=registered))
        path = results_dir / f"table{number}.md"
        path.write_text(text)
        out(f"wrote {path}")
        paths.append(path)
    return paths
