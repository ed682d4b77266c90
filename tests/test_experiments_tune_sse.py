"""experiments/tune_sse.py: SSE's p0 and rho tuned on dev (paper section 4.5),
and `paper_tables.py run` / `report` using the choice."""

import json
import math
import pathlib
import sys

import pandas as pd
import pytest

from crisis_keras.data.crisismmd import load_crisismmd
from crisis_keras.data.demo import make_demo_data
from crisis_keras.training.config import TrainConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # experiments/ is not an installed package (setup.cfg)
from experiments import paper_tables as pt  # noqa: E402
from experiments import spec  # noqa: E402
from experiments import tune_sse as ts  # noqa: E402

TINY = ["--text-backbone", "tiny", "--image-backbone", "tiny", "--image-weights", "none",
        "--image-size", "32", "--resize-to", "36", "--epochs", "1", "--batch-size", "8",
        "--sequence-length", "16", "--max-train-examples", "16"]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune_sse_demo")
    return make_demo_data(root, sizes={"train": 32, "dev": 16, "test": 16})


def markdown_rows(text):
    return [[c.strip() for c in line.strip().strip("|").split(" | ")]
            for line in text.splitlines() if line.startswith("| ")]


def planned_config(lines, name):
    """The `config:` line a dry run prints for the named config `name`."""
    lines = "\n".join(lines).splitlines()
    start = next(i for i, line in enumerate(lines) if f"[implemented]      {name}:" in line)
    return next(line for line in lines[start:] if "config:" in line)


def run_values(run_dir):
    """(dev macro F1, dev accuracy, dev loss of the kept epoch) read from the run folder."""
    metrics = json.loads((run_dir / "metrics.json").read_text())["dev"]
    history = json.loads((run_dir / "checkpoint" / "state.json").read_text())["history"]
    return metrics["macro_f1"], metrics["accuracy"], min(h["val_loss"] for h in history)


# ---- The grid and the choice (no training) -------------------------------------


def test_default_grid_covers_the_papers_ranges():
    assert len(ts.DEFAULT_P0) >= 5 and len(ts.DEFAULT_RHO) >= 5
    assert (min(ts.DEFAULT_P0), max(ts.DEFAULT_P0)) == (0.0, 1.0)
    assert (min(ts.DEFAULT_RHO), max(ts.DEFAULT_RHO)) == (10.0, 20000.0)
    ratios = [b / a for a, b in zip(ts.DEFAULT_RHO, ts.DEFAULT_RHO[1:])]
    assert max(ratios) / min(ratios) < 1.1  # log-spaced
    points = ts.grid_points(ts.DEFAULT_P0, ts.DEFAULT_RHO)
    # p0 = 0 is SSE off: rho unused, one run instead of one per rho.
    assert points[0] == ts.GridPoint(0.0, None)
    assert len(points) == 1 + (len(ts.DEFAULT_P0) - 1) * len(ts.DEFAULT_RHO)
    assert points[0].run_name(0) == "p0-0-rho-any-seed0"
    assert ts.GridPoint(0.25, 20000.0).run_name(3) == "p0-0.25-rho-20000-seed3"
    assert ts.tuning_key("informative", "A") == "informative-settingA"
    assert ts.tuning_key("humanitarian", "C", 2) == "humanitarian-settingC2"
    assert ts.tuning_key("humanitarian", "A", None, "co_attention") == (
        "humanitarian-settingA-co_attention")
    for bad in (dict(p0s=[1.5], rhos=[10]), dict(p0s=[0.1], rhos=[0.5]),
                dict(p0s=[0.1], rhos=[math.inf])):
        with pytest.raises(ValueError):
            ts.grid_points(bad["p0s"], bad["rhos"])


def test_select_takes_the_best_dev_macro_f1_then_the_lower_dev_loss():
    def cell(p0, rho, f1, loss, status="finished"):
        return ts.Cell(ts.GridPoint(p0, rho), [], status, f1, 0.5, loss)

    cells = [cell(0.0, None, 0.7, 0.2), cell(0.1, 10.0, 0.8, 0.5), cell(0.1, 67.0, 0.8, 0.4),
             cell(0.5, 10.0, 0.9, 0.1, status="failed")]
    assert ts.select(cells).point == ts.GridPoint(0.1, 67.0)
    assert ts.select([cell(0.1, 10.0, 0.8, 0.4), cell(0.5, 10.0, 0.8, 0.4)]).point.p0 == 0.1
    assert ts.select([cells[-1]]) is None


def test_tune_sse_refuses_what_it_sets_itself_and_models_without_sse(tmp_path, demo_dir):
    base = ["tune-sse", "--task", "informative", "--data-dir", str(demo_dir),
            "--output-dir", str(tmp_path), "--dry-run"]
    for extra in (["--sse-p0", "0.5"], ["--seed", "1"], ["--model", "attention_variant_1"],
                  ["--p0", "2"]):
        with pytest.raises(SystemExit):
            pt.main(base + extra, out=lambda *a: None)
    with pytest.raises(SystemExit):  # no --data-dir
        pt.main(["tune-sse", "--task", "informative"], out=lambda *a: None)
    lines = []
    assert pt.main(base + ["--p0", "0", "0.5", "--rho", "10", "20000"], out=lines.append) == 0
    text = "\n".join(lines)
    assert "3 grid point(s)" in text and "estimate:" in text
    assert text.count("[planned]") == 3
    assert list(tmp_path.iterdir()) == []  # a dry run writes nothing


# ---- A tiny grid, trained -----------------------------------------------------


def test_tune_sse_grid_report_choice_and_run(tmp_path, demo_dir):
    output_dir, results_dir = tmp_path / "runs", tmp_path / "results"
    argv = ["tune-sse", "--task", "informative", "--data-dir", str(demo_dir),
            "--output-dir", str(output_dir), "--results-dir", str(results_dir),
            "--p0", "0", "0.5", "--rho", "10", "20000", *TINY]
    assert pt.main(argv, out=lambda *a: None) == 0
    group = output_dir / "tune-sse" / "informative-settingA"
    names = ["p0-0-rho-any-seed0", "p0-0.5-rho-10-seed0", "p0-0.5-rho-20000-seed0"]
    assert sorted(p.name for p in group.iterdir()) == names
    values = {}
    for name in names:
        config = TrainConfig.from_json_file(group / name / "config.json")
        assert (config.model, config.task, config.setting, config.epochs) == (
            "sse_cross", "informative", "A", 1)
        values[(config.sse_p0, config.sse_rho)] = run_values(group / name)
    assert set(values) == {(0.0, None), (0.5, 10.0), (0.5, 20000.0)}

    # The choice: the argmax of dev macro F1 over the runs (ties: lower dev loss).
    tuned = json.loads((output_dir / ts.TUNED_FILE).read_text())["informative-settingA"]
    best = max(values, key=lambda k: (values[k][0], -values[k][2]))
    assert (tuned["p0"], tuned["rho"]) == best
    assert tuned["dev_macro_f1"] == values[best][0] and tuned["model"] == "sse_cross"

    # The report: every cell's numbers, read back from the runs' metrics.json.
    md = (results_dir / "tune-sse-informative-settingA.md").read_text()
    assert (results_dir / "tune-sse-informative-settingA.png").read_bytes()[:4] == b"\x89PNG"
    rows = markdown_rows(md)
    every_run = {(r[0], r[1]): r for r in rows if len(r) == 8 and r[0] != "p0"}
    for (p0, rho), (f1, accuracy, loss) in values.items():
        row = every_run[(f"{p0:g}", "any" if rho is None else f"{rho:g}")]
        assert row[3:6] == [f"{100 * f1:.2f}", f"{100 * accuracy:.2f}", f"{loss:.4f}"]
    matrix = {r[0]: r[1:] for r in rows if len(r) == 3}
    assert matrix["p0 \\ rho"] == ["10", "20000"]
    for (p0, rho), (f1, accuracy, _) in values.items():
        label = "0 (SSE off; rho unused)" if p0 == 0 else f"{p0:g}"
        cells = matrix[label] if rho is None else [matrix[label][[10.0, 20000.0].index(rho)]]
        text = f"{100 * f1:.2f} (acc {100 * accuracy:.2f})"
        chosen = (p0, rho) == best
        assert all(c == (f"**{text}** (chosen)" if chosen else text) for c in cells)
    assert "**Chosen: p0 = " in md

    # A rerun skips the finished points.
    lines = []
    assert pt.main(argv, out=lines.append) == 0
    assert "\n".join(lines).count("is already complete") == 3

    # `run` trains the table's SSE row with the chosen values ...
    run = ["run", "--table", "3", "--rows", "sse-cross-bert-densenet", "--data-dir",
           str(demo_dir), "--output-dir", str(output_dir), *TINY]
    assert pt.main(run, out=lambda *a: None) == 0
    config = TrainConfig.from_json_file(output_dir / "table3-sse-cross-bert-densenet" / "config.json")
    assert (config.sse_p0, config.sse_rho) == best
    assert pt.main(["report", "--table", "3", "--output-dir", str(output_dir), "--results-dir",
                    str(results_dir)], out=lambda *a: None) == 0
    runs_line = next(line for line in (results_dir / "table3.md").read_text().splitlines()
                     if line.startswith("- `table3-sse-cross-bert-densenet`"))
    assert "tuned on dev by tune-sse" in runs_line and "sse_p0=" not in runs_line
    # ... unless --sse-p0 is given (a value on the command line wins, field by field);
    # rows without SSE get no tuned values.
    lines = []
    assert pt.main(run[:4] + ["sse-cross-bert-densenet", "attention-variant-1", "--dry-run",
                              "--sse-p0", "0.75"] + run[5:], out=lines.append) == 0
    sse_plan = planned_config(lines, "table3-sse-cross-bert-densenet")
    assert "sse_p0=0.75" in sse_plan.split()
    assert (f"sse_rho={best[1]}" in sse_plan.split()) == (best[1] is not None)
    lines = []
    assert pt.main(run[:4] + ["attention-variant-1", "--dry-run"] + run[5:],
                   out=lines.append) == 0
    plan = planned_config(lines, "table3-attention-variant-1").split()
    assert not [token for token in plan if token.startswith(("sse_p0=", "sse_rho="))]
    named = spec.named_config("table3-sse-cross-bert-densenet")
    assert ts.with_tuned_sse(named, {"sse_p0": 0.3, "sse_rho": 5.0}, output_dir) == {
        "sse_p0": 0.3, "sse_rho": 5.0}


def test_setting_c_tunes_on_the_held_out_15_percent_of_training(tmp_path, demo_dir):
    output_dir = tmp_path / "runs"
    lines = []
    assert pt.main(["tune-sse", "--task", "humanitarian", "--setting", "C", "--experiment", "3",
                    "--data-dir", str(demo_dir), "--output-dir", str(output_dir),
                    "--results-dir", str(tmp_path), "--p0", "0.5", "--rho", "10", *TINY],
                   out=lines.append) == 0
    assert "15%" in "\n".join(lines)
    run_dir = output_dir / "tune-sse" / "humanitarian-settingC3" / "p0-0.5-rho-10-seed0"
    data = load_crisismmd(demo_dir, "humanitarian", setting="C", setting_c_experiment=3, seed=0)
    predictions = pd.read_csv(run_dir / "predictions.tsv", sep="\t", dtype=str)
    dev_ids = sorted(predictions.loc[predictions["split"] == "dev", "image_id"])
    assert dev_ids == sorted(data.splits["dev"]["image_id"].astype(str))
    assert not set(dev_ids) & set(data.splits["train"]["image_id"].astype(str))
    tuned = json.loads((output_dir / ts.TUNED_FILE).read_text())
    assert (tuned["humanitarian-settingC3"]["p0"], tuned["humanitarian-settingC3"]["rho"]) == (
        0.5, 10.0)
    assert "15%" in (tmp_path / "tune-sse-humanitarian-settingC3.md").read_text()
