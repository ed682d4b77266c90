"""A quiet start (crisis_keras/_quiet.py): the command-line entry points hide
TensorFlow's start-up noise unless `--verbose`."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from crisis_keras import _quiet

ROOT = Path(__file__).resolve().parents[1]
NOISE = re.compile(
    r"^(I0000|W0000|E0000)|oneDNN|cuda|cpu_feature_guard|This TensorFlow binary is optimized"
    r"|All log messages before absl",
    re.IGNORECASE | re.MULTILINE,
)
# What TensorFlow 2.21 prints while it loads (TF_CPP_MIN_LOG_LEVEL does not
# reach these lines, tensorflow issue #100442) and later.
STARTUP = (
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    b"I0000 00:00:1796211746.149337    7904 port.cc:153] oneDNN custom operations are on.\n"
    b"I0000 00:00:1796211746.149808    7904 cudart_stub.cc:31] Could not find cuda drivers.\n"
    b"I0000 00:00:1796211746.290135    7904 cpu_feature_guard.cc:227] This TensorFlow binary "
    b"is optimized to use available CPU instructions in performance-critical operations.\n"
    b"To enable the following instructions: AVX2 FMA, in other operations, rebuild.\n"
    b"W0000 00:00:1796211746.3    7904 some.cc:1] a warning\n"
    b"E0000 00:00:1796211755.551646    7904 cuda_platform.cc:52] failed call to cuInit\n"
    b"Traceback (most recent call last): something of ours\n"
)


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # CI sets it
    env.update(extra)
    return env


def _run(args, env, timeout=600):
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    "level, kept",
    [
        (0, STARTUP),
        (1, b"W0000 00:00:1796211746.3    7904 some.cc:1] a warning\n"
            b"E0000 00:00:1796211755.551646    7904 cuda_platform.cc:52] failed call to cuInit\n"
            b"Traceback (most recent call last): something of ours\n"),
        (3, b"Traceback (most recent call last): something of ours\n"),
    ],
)
def test_filter_drops_only_lines_below_the_level(level, kept):
    assert _quiet.filter_startup_lines(STARTUP, level) == kept


def test_stderr_filter_replays_everything_when_the_block_fails(capfd):
    with _quiet._StderrFilter(3):
        os.write(2, STARTUP)
    assert capfd.readouterr().err.encode() == b"Traceback (most recent call last): something of ours\n"
    with pytest.raises(ImportError):
        with _quiet._StderrFilter(3):
            os.write(2, STARTUP)
            raise ImportError("boom")
    assert capfd.readouterr().err.encode() == STARTUP


_PROBE = (
    "import os, sys; from crisis_keras._quiet import parse_args; "
    "from crisis_keras.train import build_parser; "
    "args = parse_args(build_parser(), sys.argv[1:]); "
    "assert not hasattr(args, 'verbose'), args; "
    "print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'), 'tensorflow' in sys.modules)"
)


def test_verbose_does_not_force_the_log_level():
    base = ["-c", _PROBE, "--task", "severity"]
    assert _run(base, _env()).stdout.split() == ["3", "False"]  # TF not imported yet
    assert _run(base + ["--verbose"], _env()).stdout.split() == ["None", "False"]
    user = _env(TF_CPP_MIN_LOG_LEVEL="1")
    assert _run(base, user).stdout.split() == ["1", "False"]  # the user's choice wins


def test_help_is_quiet_and_lists_verbose():
    result = _run(["-m", "crisis_keras.evaluate", "--help"], _env())
    assert result.returncode == 0
    assert "--verbose" in result.stdout
    assert not NOISE.search(result.stdout + result.stderr)


def test_quick_start_first_line_is_ours(tmp_path):
    """The quick-start entry point with a tiny image backbone (same imports,
    same TensorFlow start-up as the README's command, in seconds)."""
    result = _run(
        ["-m", "crisis_keras.train", "--task", "severity", "--text-backbone", "tiny",
         "--image-weights", "none", "--epochs", "1", "--image-backbone", "tiny",
         "--image-size", "32", "--resize-to", "36", "--max-train-examples", "32",
         "--output-dir", str(tmp_path / "runs"), "--run-name", "quiet"],
        _env(CRISIS_KERAS_HOME=str(tmp_path / "home")),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert not NOISE.search(output), output
    assert result.stdout.splitlines()[0].startswith("crisis_keras: no --data-dir given"), output
    assert "test: accuracy" in result.stdout


def test_rest_server_is_quiet_although_its_package_imports_tensorflow():
    """`crisis_keras.serving` imports TensorFlow before rest_server's code runs:
    `python -m crisis_keras...` is quiet from the package root on."""
    result = _run(["-m", "crisis_keras.serving.rest_server", "--help"], _env())
    assert result.returncode == 0
    assert "--verbose" in result.stdout
    assert not NOISE.search(result.stdout + result.stderr), result.stderr
