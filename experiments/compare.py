#!/usr/bin/env python
"""Compare training options on one base run: variants x seeds, a dev table.

    python experiments/compare.py --output-dir runs/real/momentum \\
        --variant "momentum 0.9:momentum=0.9" --variant "plain SGD:momentum=0" \\
        --seeds 0 1 2 [--out experiments/results/momentum.md] \\
        --task informative --model bert --features DIR --data-dir DIR [...]

Every TrainConfig field is a flag (as in `paper_tables.py run`) and sets the
base run; each `--variant "LABEL:field=value,field=value"` overrides fields of
it. Runs go to `<output-dir>/<variant slug>-seed<N>`, resume when unfinished
and are skipped when finished, so running the command again only prints the
table. The table gives, per variant, mean ± standard deviation over the seeds
of the dev accuracy, macro F1 and weighted F1, the epoch of the best dev loss
(the paper's selection, section 4.5) and of the best dev macro F1, and the
weakest class's dev F1. Only finished runs' files are read; nothing is typed in.
"""

import argparse
import dataclasses
import statistics
import sys
import typing
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

if not __package__:  # run as a script: experiments/ is not an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crisis_keras.training.config import TrainConfig  # noqa: E402
from experiments.paper_tables import _field_converter  # noqa: E402
from experiments.runner import read_json  # noqa: E402
from experiments.spec import slugify  # noqa: E402

_NOT_OVERRIDABLE = {"output_dir", "run_name", "seed"}


@dataclasses.dataclass(frozen=True)
class Variant:
    label: str
    overrides: Tuple[Tuple[str, object], ...]

    @property
    def slug(self) -> str:
        return slugify(self.label) or "base"


def _convert(field: dataclasses.Field, text: str):
    default = field.default
    if text.lower() in ("none", "null"):
        return None
    if isinstance(default, bool):
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"{field.name}: expected true or false, got {text!r}")
        return text.lower() in ("true", "1")
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    try:  # Optional numbers (sse_p0, ...) have default None
        return float(text) if any(c in text for c in ".e") else int(text)
    except ValueError:
        return text


def parse_variant(text: str) -> Variant:
    """`"LABEL:field=value,field=value"` (or just `"LABEL"`: the base run)."""
    label, _, assignments = text.partition(":")
    if not label.strip():
        raise argparse.ArgumentTypeError(f"variant {text!r} has no label before ':'")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    overrides = []
    for part in filter(None, (p.strip() for p in assignments.split(","))):
        name, eq, value = part.partition("=")
        name = name.strip().replace("-", "_")
        if not eq or name not in fields or name in _NOT_OVERRIDABLE:
            raise argparse.ArgumentTypeError(
                f"variant {label!r}: {part!r} is not FIELD=VALUE of an overridable "
                f"TrainConfig field")
        try:
            overrides.append((name, _convert(fields[name], value.strip())))
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"variant {label!r}: {error}") from error
    return Variant(label.strip(), tuple(overrides))


def variant_config(base: Dict, variant: Variant, seed: int, output_dir) -> TrainConfig:
    values = {**base, **dict(variant.overrides), "seed": seed, "output_dir": str(output_dir),
              "run_name": f"{variant.slug}-seed{seed}"}
    return TrainConfig.from_dict(values)


def _best_epoch(history: List[Dict], key: str, mode: str):
    rows = [r for r in history if r.get(key) is not None]
    if not rows:
        return None
    pick = min if mode == "min" else max
    return int(pick(rows, key=lambda r: float(r[key]))["epoch"])


def run_summary(run_dir: Path):
    """Dev numbers of a finished run, or None."""
    import pandas as pd

    metrics = read_json(run_dir / "metrics.json")
    if not metrics or "dev" not in metrics:
        return None
    history = []
    if (run_dir / "history.csv").exists():
        history = pd.read_csv(run_dir / "history.csv").to_dict("records")
    dev = metrics["dev"]
    missing = (read_json(run_dir / "metrics_missing.json") or {}).get("dev", {})
    return {
        "no_image_macro_f1": missing.get("no_image", {}).get("macro_f1"),
        "no_text_macro_f1": missing.get("no_text", {}).get("macro_f1"),
        "accuracy": dev["accuracy"], "macro_f1": dev["macro_f1"],
        "weighted_f1": dev["weighted_f1"],
        "weakest_f1": min(c["f1"] for c in dev["per_class"].values()),
        "weakest_class": min(dev["per_class"], key=lambda c: dev["per_class"][c]["f1"]),
        "best_loss_epoch": _best_epoch(history, "val_loss", "min"),
        "best_f1_epoch": _best_epoch(history, "val_macro_f1", "max"),
        "epochs": len(history),
        # wall-clock seconds per epoch of the invocation that finished the run (trainer's
        # timing.json; None for runs made before it, or resumed ones, which count a part)
        "seconds_per_epoch": ((read_json(run_dir / "timing.json") or {}).get("wall_seconds", 0)
                              / len(history) or None) if history else None,
    }


def _mean_sd(values: Sequence[float], scale=100.0, digits=1) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mean = scale * statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {scale * statistics.stdev(values):.{digits}f}"


def _epochs(values) -> str:
    values = [v for v in values if v is not None]
    return ", ".join(map(str, values)) if values else "-"


def render(variants: Sequence[Variant], summaries: Dict[str, List], seeds, command: str) -> str:
    # Models trained with modality dropout (metrics_missing.json): two more columns.
    missing = any(s and s["no_image_macro_f1"] is not None
                  for runs in summaries.values() for s in runs)
    lines = [
        f"Dev split; mean ± sd over seeds {', '.join(map(str, seeds))} (percent). "
        "Best-loss / best-F1 epoch: per seed. Regenerate with:",
        "",
        "```", command, "```", "",
        "| variant | overrides | seeds | dev acc | dev macro F1 | dev weighted F1 | "
        + ("dev macro F1, image removed | dev macro F1, text removed | " if missing else "")
        + "s per epoch | weakest class F1 | best dev loss at epoch | best dev macro F1 at epoch "
        "| epochs run |",
        "| --- | --- | ---: | ---: | ---: | ---: | " + ("---: | ---: | " if missing else "")
        + "---: | --- | --- | --- | --- |",
    ]
    for v in variants:
        done = [s for s in summaries[v.slug] if s is not None]
        overrides = ", ".join(f"`{k}={val}`" for k, val in v.overrides) or "(base)"
        weakest = "-"
        if done:
            worst = min(done, key=lambda s: s["weakest_f1"])
            weakest = f"{_mean_sd([s['weakest_f1'] for s in done])} (min: {worst['weakest_class']})"
        lines.append(
            f"| {v.label} | {overrides} | {len(done)}/{len(seeds)} | "
            f"{_mean_sd([s['accuracy'] for s in done])} | "
            f"{_mean_sd([s['macro_f1'] for s in done])} | "
            f"{_mean_sd([s['weighted_f1'] for s in done])} | "
            + (f"{_mean_sd([s['no_image_macro_f1'] for s in done])} | "
               f"{_mean_sd([s['no_text_macro_f1'] for s in done])} | " if missing else "")
            + f"{_mean_sd([s['seconds_per_epoch'] for s in done], scale=1.0, digits=0)} | "
            f"{weakest} | "
            f"{_epochs([s['best_loss_epoch'] for s in done])} | "
            f"{_epochs([s['best_f1_epoch'] for s in done])} | "
            f"{_epochs([s['epochs'] for s in done])} |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python experiments/compare.py",
        description="Train variants of one base run over seeds; print a dev-split table.")
    parser.add_argument("--variant", dest="variants", action="append", type=parse_variant,
                        required=True, metavar="LABEL:FIELD=VALUE,...")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output-dir", required=True, help="run folders go here")
    parser.add_argument("--out", default=None, help="also write the table to this .md file")
    parser.add_argument("--title", default=None, help="a heading for --out")
    parser.add_argument("--report-only", action="store_true",
                        help="print the table from finished runs; train nothing")
    group = parser.add_argument_group("the base run: TrainConfig fields ('none' for None)")
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        if field.name in _NOT_OVERRIDABLE:
            continue
        convert, is_flag = _field_converter(hints[field.name])
        flag = "--" + field.name.replace("_", "-")
        if field.name == "features_dir":
            flag = "--features"
        if is_flag:
            group.add_argument(flag, dest=field.name, action="store_true",
                               default=argparse.SUPPRESS)
        else:
            group.add_argument(flag, dest=field.name, type=convert, default=argparse.SUPPRESS,
                               metavar=field.name.upper(), help=f"(default {field.default!r})")
    return parser


def main(argv=None, out=print, command=None) -> int:
    """Runs the comparison; `command`: the line the table says regenerates it
    (default: this script with `argv`)."""
    from crisis_keras._quiet import parse_args

    parser = build_parser()
    args = parse_args(parser, argv)
    slugs = [v.slug for v in args.variants]
    if len(set(slugs)) != len(slugs):
        parser.error(f"variant labels must differ after slugifying: {slugs}")
    base = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
            if hasattr(args, f.name) and f.name not in _NOT_OVERRIDABLE}
    if base.get("features_dir"):
        from experiments.runner import with_feature_cache_backbones

        base = with_feature_cache_backbones(base)
    output_dir = Path(args.output_dir)
    failed = []
    summaries: Dict[str, List] = {}
    for variant in args.variants:
        summaries[variant.slug] = []
        for seed in args.seeds:
            config = variant_config(base, variant, seed, output_dir)
            if not args.report_only and not (read_json(config.run_dir() / "metrics.json")):
                from crisis_keras.training.trainer import train

                out(f"compare: training {config.run_dir()}")
                try:
                    train(config, announce=lambda m: out(f"    {m}"))
                except (ValueError, FileNotFoundError) as error:
                    failed.append(f"{config.run_dir()}: {error}")
                    out(f"compare: FAILED {config.run_dir()}: {error}")
                finally:
                    import keras

                    keras.backend.clear_session()
            summaries[variant.slug].append(run_summary(config.run_dir()))
    command = command or "python experiments/compare.py " + " ".join(
        _quote(a) for a in (sys.argv[1:] if argv is None else argv))
    table = render(args.variants, summaries, args.seeds, command)
    out(table)
    if args.out:
        heading = f"# {args.title}\n\n" if args.title else ""
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(heading + table)
        out(f"compare: wrote {args.out}")
    return 1 if failed else 0


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


if __name__ == "__main__":
    sys.exit(main())
