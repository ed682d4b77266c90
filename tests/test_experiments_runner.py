"""experiments/paper_tables.py (command line), runner.py and report.py: dry run, report,
one real run + report."""

import json
import pathlib
import subprocess
import sys
import types

import pytest

from crisis_keras.data.crisismmd import load_crisismmd
from crisis_keras.data.demo import make_demo_data
from crisis_keras.training.config import TrainConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # experiments/ is not an installed package (setup.cfg)
from experiments import paper_tables as pt  # noqa: E402  (the command line)
from experiments import report, runner, spec  # noqa: E402

TINY = ["--text-backbone", "tiny", "--image-backbone", "tiny", "--image-weights", "none",
        "--image-size", "32", "--resize-to", "36", "--epochs", "1", "--batch-size", "8",
        "--sequence-length", "16"]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper_tables_demo")
    return make_demo_data(root, sizes={"train": 32, "dev": 16, "test": 16})


@pytest.fixture(scope="module")
def registered():
    from crisis_keras.models import model_names

    return frozenset(model_names())


def markdown_rows(text):
    """Cells of every markdown table line."""
    return [[c.strip() for c in line.strip().strip("|").split(" | ")]
            for line in text.splitlines() if line.startswith("| ")]


def paper_and_ours(text, label):
    rows = markdown_rows(text)
    for i, cells in enumerate(rows):
        if cells[0] == label and cells[2] == "paper":
            return cells, rows[i + 1]
    raise AssertionError(f"no row {label!r}")


def percent(value):
    return f"{100 * value:.2f}"


# ---- Command line ------------------------------------------------------------


def test_overrides_are_parsed_as_train_config_fields():
    args = pt.build_parser().parse_args(
        ["run", "--table", "4", "--data-dir", "/d", "--image-weights", "none", "--epochs", "3",
         "--learning-rate", "0.01", "--sse-p0", "0.5", "--mixed-precision", "auto",
         "--max-train-examples", "none", "--text-backbone", "tiny"])
    assert (args.image_weights, args.epochs, args.learning_rate, args.sse_p0) == (None, 3, 0.01, 0.5)
    assert args.mixed_precision == "auto" and args.max_train_examples is None
    assert args.text_backbone == "tiny" and args.data_dir == "/d"
    assert not hasattr(args, "batch_size")  # only what was given overrides
    for fixed in ("--model", "--task", "--setting", "--experiment", "--run-name"):
        with pytest.raises(SystemExit):
            pt.build_parser().parse_args(["run", "--table", "4", fixed, "x"])
    assert pt._tables_arg(["all"]) == [2, 3, 4, 5, 6, 7, 8]
    assert pt._tables_arg(["4,8", "3", "4"]) == [4, 8, 3]
    with pytest.raises(SystemExit):
        pt.main(["report", "--table", "9"])


def test_run_needs_a_data_dir_unless_dry_run(tmp_path):
    with pytest.raises(SystemExit):
        pt.main(["run", "--table", "4", "--output-dir", str(tmp_path)], out=lambda *a: None)
    with pytest.raises(SystemExit):
        pt.main(["run", "--table", "7", "--columns", "exp9", "--dry-run"], out=lambda *a: None)
    with pytest.raises(SystemExit, match="unknown row"):
        pt.main(["run", "--table", "4", "--rows", "no-such-row", "--dry-run"],
                out=lambda *a: None)


def test_script_runs_standalone():
    result = subprocess.run([sys.executable, str(ROOT / "experiments" / "paper_tables.py"),
                             "run", "--help"], capture_output=True, text=True, cwd=ROOT,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--dry-run" in result.stdout and "--text-backbone" in result.stdout


def test_paper_tables_re_exports_the_public_names_of_spec_runner_and_report():
    """`import paper_tables as pt` users see every public name of the three modules."""
    for module in (spec, runner, report):
        for name, value in vars(module).items():
            if name.startswith("_") or isinstance(value, types.ModuleType):
                continue
            if getattr(value, "__module__", module.__name__) != module.__name__:
                continue  # imported by the module (Path, TrainConfig, typing, ...)
            assert name in pt.__all__, (module.__name__, name)
            assert getattr(pt, name) is value, (module.__name__, name)
    assert all(hasattr(pt, name) for name in pt.__all__)
    assert pt.main.__module__ == "experiments.paper_tables"


# ---- Dry run ----------------------------------------------------------------


def test_dry_run_lists_every_row_implemented_or_not(tmp_path, registered):
    lines = []
    code = pt.main(["run", "--table", "all", "--dry-run", "--output-dir", str(tmp_path),
                    "--epochs", "2"], out=lines.append)
    assert code == 0
    text = "\n".join(lines)
    for name, named in spec.named_configs().items():
        tag = "[implemented]" if named.model in registered else "[not implemented]"
        assert f"{tag:19s}{name}: {named.row!r} -> model {named.model}" in text, name
    assert "[reference]        best-from-table-3-4-5" in text
    assert "[count]" in text  # Table 2
    assert "config: task=humanitarian setting=C experiment=2 model=bert" in text
    assert "epochs=2" in text
    assert list(tmp_path.iterdir()) == []  # nothing trained, nothing written


def test_unregistered_models_are_reported_not_skipped(tmp_path, registered):
    lines = []
    outcomes = runner.run_tables([8], overrides={}, output_dir=tmp_path, dry_run=True,
                                 registered=registered - {"ablation_mixup"}, out=lines.append)
    assert len(outcomes) == len(spec.TABLE_8.rows)
    status = {o.name: o.status for o in outcomes}
    assert status["table8-minus-sse-plus-mix-up"] == "not implemented"
    assert "[not implemented]  table8-minus-sse-plus-mix-up" in "\n".join(lines)
    assert set(status.values()) == {"planned", "not implemented"}
    # Without dry run too: reported, and the other rows are not affected.
    outcomes = runner.run_tables([8], overrides={"data_dir": str(tmp_path)}, output_dir=tmp_path,
                                 rows=["minus-sse-plus-mix-up"],
                                 registered=registered - {"ablation_mixup"}, out=lines.append)
    assert [(o.name, o.status) for o in outcomes] == [
        ("table8-minus-sse-plus-mix-up", "not implemented")]


def test_failed_rows_are_reported_and_the_others_still_run(tmp_path):
    empty = tmp_path / "no-data"
    empty.mkdir()
    argv = ["run", "--table", "4", "--rows", "bert", "densenet", "--data-dir", str(empty),
            "--output-dir", str(tmp_path / "runs"), *TINY]
    lines = []
    assert pt.main(argv, out=lines.append) == 1
    summary = "\n".join(lines).split("Summary")[1].splitlines()
    assert [line.split()[:2] for line in summary if "failed" in line.split()] == [
        ["table4-densenet", "failed"], ["table4-bert", "failed"]]
    assert sum(line.startswith("FAILED table4-") for line in summary) == 2
    with pytest.raises(Exception):
        pt.main(argv + ["--stop-on-error"], out=lambda *a: None)


# ---- Report (from hand-written run folders) ----------------------------------


def fake_run(output_dir, named, metrics, model=None, **state):
    config = named.train_config(output_dir=str(output_dir), epochs=4)
    if model:
        config = TrainConfig.from_dict({**config.to_dict(), "model": model})
    run_dir = config.run_dir()
    (run_dir / "checkpoint").mkdir(parents=True)
    (run_dir / "config.json").write_text(config.to_json())
    if metrics is not None:
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
    if state:
        (run_dir / "checkpoint" / "state.json").write_text(json.dumps(state))
    return run_dir


def split_metrics(accuracy, macro, weighted):
    return {"accuracy": accuracy, "macro_f1": macro, "weighted_f1": weighted, "num_examples": 9}


def test_report_shows_only_finished_runs(tmp_path, registered):
    runs = tmp_path / "runs"
    sse = {"dev": split_metrics(0.5, 0.25, 0.125), "test": split_metrics(0.875, 0.5, 0.75)}
    fake_run(runs, spec.named_config("table4-sse-cross-bert-densenet"), sse, finished=True)
    fake_run(runs, spec.named_config("table4-feature-fusion"),
             {"dev": split_metrics(0.1, 0.9, 0.1), "test": split_metrics(0.9, 0.1, 0.8)})
    fake_run(runs, spec.named_config("table4-bert"), None, completed_epochs=2)
    fake_run(runs, spec.named_config("table4-densenet"), sse, model="bert")  # another run
    paths = report.write_reports([4, 6, 8], runs, tmp_path / "results",
                                 registered=registered - {"mmbt"}, out=lambda *a: None)
    assert [p.name for p in paths] == ["table4.md", "table6.md", "table8.md"]
    table4, table6, table8 = (p.read_text() for p in paths)

    paper, ours = paper_and_ours(table4, "SSE-Cross-BERT-DenseNet")
    assert paper[3:] == ["91.14", "70.16", "90.88", "91.14", "68.41", "91.82"]
    assert ours[2] == "ours *"  # epochs=4 is not the paper's configuration
    assert ours[3:] == ["50.00", "25.00", "12.50", "87.50", "50.00", "75.00"]
    assert "epochs=4" in table4
    _, ours = paper_and_ours(table4, "BERT [17]")
    assert ours[2] == "ours: unfinished" and set(ours[3:]) == {"not run"}
    assert "2/4 epochs done" in table4
    _, ours = paper_and_ours(table4, "DenseNet [30]")
    assert ours[2] == "ours: mismatch" and set(ours[3:]) == {"not run"}
    paper, ours = paper_and_ours(table4, "MMBT [37]")
    assert paper[3:] == ["89.25", "-", "-", "85.82", "-", "-"]
    assert ours[2] == "ours: not implemented" and set(ours[3:]) == {"not run"}
    _, ours = paper_and_ours(table4, "Attention Variant 2")
    assert ours[2] == "ours: not run" and set(ours[3:]) == {"not run"}

    # Table 8's first row is Table 4's run.
    paper, ours = paper_and_ours(table8, "SSE-Cross-BERT-DenseNet")
    assert paper[3:] == ["91.14", "68.41", "91.82"] and ours[3:] == ["87.50", "50.00", "75.00"]
    _, ours = paper_and_ours(table8, "\u2212 Dropout")
    assert ours[3:] == ["not run"] * 3

    # Table 6's reference row: per-metric best of our Setting A test results.
    paper, ours = paper_and_ours(table6, "Best from Table 3, 4, 5")
    assert paper[3:] == ["89.33", "88.09", "89.35", "91.48", "67.87", "91.34"]
    assert ours[3:] == ["not run"] * 3 + ["90.00", "50.00", "80.00"]
    _, ours = paper_and_ours(table6, "SSE-Cross-BERT-DenseNet")
    assert ours[3:] == ["not run"] * 6


def test_table2_counts_the_data_layers_splits(tmp_path, demo_dir):
    lines = []
    assert runner.run_tables([2], overrides={"data_dir": str(demo_dir)}, output_dir=tmp_path,
                             out=lines.append) == []
    report.write_reports([2], tmp_path, tmp_path, out=lambda *a: None)
    text = (tmp_path / "table2.md").read_text()
    rows = markdown_rows(text)
    for row in spec.TABLE_2.rows:
        data = load_crisismmd(demo_dir, row.task, setting=row.setting,
                              setting_c_experiment=row.experiment or 3)
        index = next(i for i, c in enumerate(rows)
                     if c[:2] == [row.setting, row.label] and c[3] == "paper")
        paper, ours = rows[index], rows[index + 1]
        assert paper[4:] == [str(row.paper_train), str(row.paper_dev or "-"), str(row.paper_test)]
        assert ours[4:] == [str(len(data.splits[s])) for s in ("train", "dev", "test")]


# ---- One real run ------------------------------------------------------------


def test_run_then_report_two_rows_of_table4(tmp_path, demo_dir):
    """Tiny backbones on demo data: DenseNet and SSE-Cross-BERT-DenseNet rows."""
    output_dir, results_dir = tmp_path / "runs", tmp_path / "results"
    argv = ["run", "--table", "4", "--rows", "densenet", "sse-cross-bert-densenet",
            "--data-dir", str(demo_dir), "--output-dir", str(output_dir), *TINY]
    lines = []
    assert pt.main(argv, out=lines.append) == 0
    assert sorted(p.name for p in output_dir.iterdir()) == [
        "table4-densenet", "table4-sse-cross-bert-densenet"]
    metrics = {}
    for name in ("densenet", "sse-cross-bert-densenet"):
        run_dir = output_dir / f"table4-{name}"
        metrics[name] = json.loads((run_dir / "metrics.json").read_text())
        config = TrainConfig.from_json_file(run_dir / "config.json")
        assert (config.task, config.setting, config.text_backbone, config.epochs) == (
            "humanitarian", "A", "tiny", 1)
    assert "table4-densenet" in "\n".join(lines)

    # Running again skips the finished runs (the trainer's resume logic).
    lines = []
    assert pt.main(argv, out=lines.append) == 0
    text = "\n".join(lines)
    assert text.count("(already finished)") == 2 and "is already complete" in text

    assert pt.main(["report", "--table", "4", "8", "--output-dir", str(output_dir),
                    "--results-dir", str(results_dir)], out=lambda *a: None) == 0
    table4 = (results_dir / "table4.md").read_text()
    for label, name in (("DenseNet [30]", "densenet"),
                        ("SSE-Cross-BERT-DenseNet", "sse-cross-bert-densenet")):
        paper, ours = paper_and_ours(table4, label)
        numbers = spec.TABLE_4.row(label).paper
        assert paper[3:] == [f"{n.get(m):.2f}" for n in numbers for m in spec.METRICS]
        assert ours[2] == "ours *"
        assert ours[3:] == [percent(metrics[name][s][m])
                            for s in ("dev", "test") for m in spec.METRICS]
    _, ours = paper_and_ours(table4, "Feature Fusion")
    assert set(ours[3:]) == {"not run"}
    assert "text_backbone=tiny" in table4
    table8 = (results_dir / "table8.md").read_text()
    _, ours = paper_and_ours(table8, "SSE-Cross-BERT-DenseNet")
    assert ours[3:] == [percent(metrics["sse-cross-bert-densenet"]["test"][m])
                        for m in spec.METRICS]
