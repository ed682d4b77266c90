"""experiments/compare.py (variants x seeds of one base run, a dev table) and the
option studies of experiments/option_studies.py that the README's tables come from."""

import json
import pathlib
import sys

import pandas as pd
import pytest

from crisis_keras.data.demo import make_demo_data

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # experiments/ is not an installed package (setup.cfg)
from experiments import compare  # noqa: E402
from experiments import option_studies  # noqa: E402

TINY = ["--text-backbone", "tiny", "--image-backbone", "tiny", "--image-weights", "none",
        "--image-size", "32", "--resize-to", "36", "--epochs", "2", "--batch-size", "8",
        "--sequence-length", "16", "--task", "informative", "--model", "bert"]


def test_parse_variant_converts_values_and_refuses_unknown_fields():
    variant = compare.parse_variant("plain SGD, lr 0.01:momentum=0,learning_rate=0.01,"
                                    "class_weight=balanced,sse_p0=none,sse_rho=250")
    assert variant.label == "plain SGD, lr 0.01" and variant.slug == "plain-sgd-lr-0-01"
    assert dict(variant.overrides) == {"momentum": 0.0, "learning_rate": 0.01,
                                       "class_weight": "balanced", "sse_p0": None,
                                       "sse_rho": 250}
    assert compare.parse_variant("paper defaults").overrides == ()
    for bad in ("x:no_such_field=1", "x:seed=3", "x:momentum", ":momentum=0", "x:epochs=two"):
        with pytest.raises(Exception, match="variant|invalid literal"):
            compare.parse_variant(bad)


def test_compare_trains_each_variant_and_seed_then_reports_their_metrics(tmp_path):
    data_dir = make_demo_data(tmp_path / "demo", sizes={"train": 24, "dev": 16, "test": 8})
    out_dir, table_md = tmp_path / "runs", tmp_path / "table.md"
    argv = ["--output-dir", str(out_dir), "--seeds", "0", "1", "--out", str(table_md),
            "--variant", "base", "--variant", "balanced:class_weight=balanced",
            "--data-dir", str(data_dir), *TINY]
    lines = []
    assert compare.main(argv, out=lines.append) == 0
    runs = sorted(p.name for p in out_dir.iterdir())
    assert runs == ["balanced-seed0", "balanced-seed1", "base-seed0", "base-seed1"]
    assert json.loads((out_dir / "balanced-seed1" / "config.json").read_text())["class_weight"] == "balanced"
    assert (out_dir / "balanced-seed0" / "class_weights.json").exists()
    rows = {r[0]: r for r in ([c.strip() for c in line.strip("|").split("|")]
                              for line in table_md.read_text().splitlines()
                              if line.startswith("| base") or line.startswith("| balanced"))}
    for label, slug in (("base", "base"), ("balanced", "balanced")):
        f1 = [json.loads((out_dir / f"{slug}-seed{s}" / "metrics.json").read_text())["dev"]["macro_f1"]
              for s in (0, 1)]
        assert rows[label][2] == "2/2"
        assert rows[label][4] == compare._mean_sd(f1)  # dev macro F1, from metrics.json
        epochs = [int(pd.read_csv(out_dir / f"{slug}-seed{s}" / "history.csv")["val_loss"].idxmin()) + 1
                  for s in (0, 1)]
        assert rows[label][-3] == ", ".join(map(str, epochs))  # best dev loss at epoch
    # Again: every run is finished, nothing trains, the same table comes out.
    before = table_md.read_text()
    lines.clear()
    assert compare.main(argv, out=lines.append) == 0
    assert not [l for l in lines if l.startswith("compare: training")]
    assert table_md.read_text() == before


def test_every_option_study_is_a_valid_compare_command():
    parser = compare.build_parser()
    for study in option_studies.STUDIES.values():
        args = parser.parse_args(study.argv(report_only=True))
        assert args.output_dir == f"runs/real/{study.name}"
        assert len({v.slug for v in args.variants}) == len(args.variants)
        for variant in args.variants:  # every variant makes a valid TrainConfig
            config = compare.variant_config({"task": args.task}, variant, 0, args.output_dir)
            assert config.run_dir().name == f"{variant.slug}-seed0"
