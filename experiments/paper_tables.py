#!/usr/bin/env python
"""Tables 2-8 of the paper as named configs, a runner and a report.

Abavisani, Wu, Hu, Tetreault, Jaimes, "Multimodal Categorization of Crisis
Events in Social Media", CVPR 2020.

    python experiments/paper_tables.py run --table 4 --data-dir PATH [--output-dir runs/paper]
        [--rows ROW ...] [--columns COL ...] [--dry-run] [--stop-on-error]
        [TrainConfig overrides: --epochs 5 --text-backbone DIR --image-weights FILE ...]
    python experiments/paper_tables.py report --table 4 [--output-dir runs/paper] [--results-dir DIR]
    python experiments/paper_tables.py tune-sse --task informative --data-dir PATH [--features DIR]
        [--setting A|B|C] [--p0 ...] [--rho ...] [--seeds ...] [--epochs 10] [--dry-run]

`--table` takes 2-8 (several allowed) or `all`.

The spec (the tables and their named configs) is `experiments/spec.py`,
the runner `experiments/runner.py` and the report `experiments/report.py`;
this file is the command line and re-exports their public names, so
`import paper_tables as pt` keeps working.

Table 2 (split sizes) needs no training: `run --table 2` counts the pairs
the data layer yields in every setting and `report --table 2` compares them
with the paper's counts.

`tune-sse` (`experiments/tune_sse.py`) tunes SSE's p0 and rho on dev over a
grid (section 4.5) and records them where `run` applies them to SSE rows.

Rows whose model is not registered when the command runs are reported as
"not implemented", never skipped silently. The report fills in our numbers
only from the metrics.json of finished runs. Anything else shows "not run".
"""

import argparse
import dataclasses
import sys
import typing
from pathlib import Path
from typing import Callable, List, Sequence, Tuple

if not __package__:  # run as a script: experiments/ is not an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crisis_keras.training.config import TrainConfig  # noqa: E402
from experiments import tune_sse  # noqa: E402
from experiments.report import (  # noqa: E402
    METRIC_HEADERS,
    OurResult,
    our_result,
    render_table,
    render_table2,
    write_reports,
)
from experiments.runner import (  # noqa: E402
    NOT_ON_FEATURES,
    SPLIT_COUNTS_FILE,
    RunOutcome,
    count_splits,
    read_json,
    registered_models,
    run_state,
    run_table,
    run_tables,
    with_feature_cache_backbones,
    summarize,
)
from experiments.spec import (  # noqa: E402
    ALL_TABLES,
    METRICS,
    PAPER,
    SETTING_C_NOTE,
    TABLE_2,
    TABLE_3,
    TABLE_4,
    TABLE_5,
    TABLE_6,
    TABLE_7,
    TABLE_8,
    TABLE_NUMBERS,
    TABLES,
    Column,
    NamedConfig,
    PaperNumbers,
    PaperRow,
    PaperTable,
    SplitCountRow,
    SplitCountTable,
    named_config,
    named_configs,
    row_keys,
    select_rows,
    slugify,
)

__all__ = [
    # experiments/spec.py
    "ALL_TABLES", "METRICS", "PAPER", "SETTING_C_NOTE", "TABLE_2", "TABLE_3", "TABLE_4",
    "TABLE_5", "TABLE_6", "TABLE_7", "TABLE_8", "TABLE_NUMBERS", "TABLES", "Column",
    "NamedConfig", "PaperNumbers", "PaperRow", "PaperTable", "SplitCountRow",
    "SplitCountTable", "named_config", "named_configs", "row_keys", "select_rows", "slugify",
    # experiments/runner.py
    "NOT_ON_FEATURES", "SPLIT_COUNTS_FILE", "RunOutcome", "count_splits", "read_json",
    "registered_models", "run_state", "run_table", "run_tables", "summarize",
    "with_feature_cache_backbones",
    # experiments/report.py
    "METRIC_HEADERS", "OurResult", "our_result", "render_table", "render_table2",
    "write_reports",
    # the command line (this file)
    "DEFAULT_OUTPUT_DIR", "RESULTS_DIR", "add_override_arguments", "build_parser", "main",
]

DEFAULT_OUTPUT_DIR = "runs/paper"
RESULTS_DIR = Path(__file__).resolve().parent / "results"


_NOT_OVERRIDABLE = set(NamedConfig.FIXED) | {"output_dir"}


def _field_converter(hint) -> Tuple[Callable, bool]:
    """(converter, is_flag) of a TrainConfig field's type hint."""
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if base is bool:
        return bool, True

    def convert(text: str):
        if optional and text.lower() in ("none", "null"):
            return None
        return base(text)

    convert.__name__ = getattr(base, "__name__", "value")
    return convert, False


def add_override_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "TrainConfig overrides (crisis_keras/training/config.py; 'none' for None)")
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        if field.name in _NOT_OVERRIDABLE:
            continue
        flag = "--" + field.name.replace("_", "-")
        convert, is_flag = _field_converter(hints[field.name])
        if is_flag:
            group.add_argument(flag, dest=field.name, action="store_true",
                               default=argparse.SUPPRESS, help=f"(default {field.default!r})")
        else:
            group.add_argument(flag, dest=field.name, type=convert, default=argparse.SUPPRESS,
                               metavar=field.name.upper(), help=f"(default {field.default!r})")


def _tables_arg(values: Sequence[str]) -> List[int]:
    numbers: List[int] = []
    for value in values:
        for part in value.split(","):
            part = part.strip().lower()
            if part == "all":
                numbers += [n for n in TABLE_NUMBERS if n not in numbers]
            elif part.isdigit() and int(part) in TABLE_NUMBERS:
                if int(part) not in numbers:
                    numbers.append(int(part))
            else:
                raise argparse.ArgumentTypeError(
                    f"unknown table {part!r}; choose from {list(TABLE_NUMBERS)} or 'all'")
    return numbers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python experiments/paper_tables.py",
        description="Reproduce Tables 2-8 of Abavisani et al. (CVPR 2020): "
        "run the named configs of a table, then report ours next to the paper's numbers.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train every implemented row of the table(s)")
    run.add_argument("--table", nargs="+", required=True, metavar="N",
                     help=f"table number(s) {list(TABLE_NUMBERS)} or 'all'")
    run.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR,
                     help="run folders go here (default %(default)s)")
    run.add_argument("--rows", nargs="+", default=None, metavar="ROW",
                     help="only these rows: slug (e.g. sse-cross-bert-densenet), printed "
                     "label or model name")
    run.add_argument("--columns", nargs="+", default=None, metavar="COL",
                     help="only these column groups (Table 6: informative humanitarian; "
                     "Table 7: exp1 exp2 exp3)")
    run.add_argument("--dry-run", action="store_true",
                     help="print the plan (row, model, config) without training")
    run.add_argument("--stop-on-error", action="store_true",
                     help="stop at the first failed run (default: go on, exit 1 at the end)")
    run.add_argument("--features", dest="features_dir", default=argparse.SUPPRESS,
                     metavar="FEATURES_DIR",
                     help="train the rows on a frozen-backbone feature cache "
                     "(python -m crisis_keras.features extract); MMBT rows are skipped")
    add_override_arguments(run)

    report = sub.add_parser("report", help="write results/tableN.md: ours next to the paper's")
    report.add_argument("--table", nargs="+", required=True, metavar="N")
    report.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR,
                        help="where the runs are (default %(default)s)")
    report.add_argument("--results-dir", default=str(RESULTS_DIR),
                        help="where tableN.md goes (default: experiments/results)")
    report.add_argument("--seed", type=int, nargs="+", default=[0],
                        help="report the runs made with this --seed (default 0); several "
                        "seeds: mean ± standard deviation over them")

    tune = sub.add_parser("tune-sse", help="tune SSE's p0 and rho on dev (section 4.5) for "
                          "`run` (experiments/tune_sse.py)")
    tune.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR,
                      help="runs go to OUTPUT_DIR/tune-sse/, the choice to "
                      "OUTPUT_DIR/tuned-sse.json (default %(default)s)")
    tune.add_argument("--features", dest="features_dir", default=argparse.SUPPRESS,
                      metavar="FEATURES_DIR", help="train on a frozen-backbone feature cache")
    tune_sse.add_arguments(tune)
    add_override_arguments(tune)
    return parser


def main(argv=None, out=print) -> int:
    from crisis_keras._quiet import parse_args  # adds --verbose; quiet TensorFlow start

    parser = build_parser()
    args = parse_args(parser, argv)
    if args.command == "tune-sse":
        overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                     if hasattr(args, f.name) and f.name not in _NOT_OVERRIDABLE}
        if overrides.get("data_dir") is None:
            parser.error("tune-sse needs --data-dir (the CrisisMMD dataset root or split folder)")
        try:
            return tune_sse.main(args, overrides, output_dir=args.output_dir,
                                 results_dir=RESULTS_DIR, out=out)
        except ValueError as error:  # bad grid or options (runs report their own errors)
            parser.error(str(error))
    try:
        numbers = _tables_arg(args.table)
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    if args.command == "report":
        seed = args.seed[0] if len(args.seed) == 1 else args.seed
        write_reports(numbers, args.output_dir, args.results_dir, seed=seed, out=out)
        return 0

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                 if hasattr(args, f.name) and f.name not in _NOT_OVERRIDABLE}
    if overrides.get("data_dir") is None and not args.dry_run:
        parser.error("run needs --data-dir (the CrisisMMD dataset root or split folder); "
                     "use --dry-run to only print the plan")
    if args.columns:
        known = {c.key for n in numbers if n in TABLES for c in TABLES[n].columns if c.key}
        unknown = sorted(set(args.columns) - known)
        if unknown:
            parser.error(f"unknown column(s) {unknown}; known: {sorted(known)}")
    overrides = with_feature_cache_backbones(overrides)
    outcomes = run_tables(numbers, overrides=overrides, output_dir=args.output_dir,
                          rows=args.rows, columns=args.columns, dry_run=args.dry_run,
                          stop_on_error=args.stop_on_error, out=out)
    if args.dry_run:
        planned = sum(o.status == "planned" for o in outcomes)
        missing = [o for o in outcomes if o.status == "not implemented"]
        out(f"\n{planned} run(s) planned; {len(missing)} not implemented"
            + (f" ({', '.join(sorted({o.model for o in missing}))})" if missing else "") + ".")
    else:
        summarize(outcomes, out=out)
        tables = " ".join(map(str, numbers))
        out(f"\nNext: python experiments/paper_tables.py report --table {tables} "
            f"--output-dir {args.output_dir}")
    return 1 if any(o.status == "failed" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
