"""bench/readme_figures.py: every figure block of the README has the section
that regenerates it, and the blocks are rewritten in place (issue 15)."""

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def figures():
    """The script as a module (bench/ is not a package); importing it runs nothing."""
    spec = importlib.util.spec_from_file_location("readme_figures", ROOT / "bench" / "readme_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_readme_block_has_its_section_and_every_section_its_block(figures):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    starts = re.findall(r"<!-- figures:([a-z_]+):start -->", text)
    ends = re.findall(r"<!-- figures:([a-z_]+):end -->", text)
    assert starts == ends and len(set(starts)) == len(starts)
    assert sorted(starts) == sorted(figures.SECTIONS)
    for name in starts:  # each block is found once, as --write needs
        assert figures.replace_block(text, name, "x").count(figures.markers(name)[0]) == 1


def test_replace_block_keeps_the_markers_and_the_text_around_them(figures):
    start, end = figures.markers("demo")
    text = f"before\n{start}\nold\nlines\n{end}\nafter\n"
    assert figures.replace_block(text, "demo", "new\n") == f"before\n{start}\nnew\n{end}\nafter\n"
    with pytest.raises(ValueError, match="exactly one"):
        figures.replace_block("no markers here", "demo", "new")
    with pytest.raises(ValueError, match="exactly one"):
        figures.replace_block(text + text, "demo", "new")


def test_image_cache_section_compares_with_the_throughput_blocks_fastest_step(figures, tmp_path):
    start, end = figures.markers("throughput")
    readme = tmp_path / "README.md"
    readme.write_text(
        f"Training step: 9.99 pairs/s elsewhere\n{start}\n| table |\n\nTraining step: 1.71 pairs/s "
        "(fp32, Keras batch norm, no cut: the defaults before issue 11) -> 4.55 "
        f"(`--mixed-precision auto --trim-sequences`, fused batch norm), 2.66x.\n{end}\n")
    assert figures._fastest_training_step(readme) == 4.55
    readme.write_text(f"{start}\nnot measured yet\n{end}\n")
    assert figures._fastest_training_step(readme) is None
    readme.write_text("no throughput block\n")
    assert figures._fastest_training_step(readme) is None
