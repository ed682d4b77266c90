"""A quiet start for the command-line entry points.

TensorFlow prints start-up notices on stderr (oneDNN, "Could not find cuda
drivers", the CPU feature guard, `failed call to cuInit`, "All log messages
before absl::InitializeLog()"). `quiet_start()` hides them, so the first line
a user sees is the project's; `--verbose` on every command line keeps them.

What it does, before TensorFlow is imported and only where the user has not
chosen otherwise:

- `TF_CPP_MIN_LOG_LEVEL=3` (unless set): TensorFlow's C++ logging drops INFO,
  WARNING and ERROR messages (`cuInit`, the CPU feature guard, oneDNN's
  `DT_INT64` fallback, tf.data's `OUT_OF_RANGE` notices). Errors that matter
  still reach the user as Python exceptions.
- The messages logged while the shared libraries load (oneDNN and cuda-driver
  notices, the absl line) ignore that level in TF 2.19-2.21 (tensorflow issue
  #100442): they are written before TensorFlow reads it. So the first
  `import tensorflow` runs with file descriptor 2 sent to a temporary file;
  afterwards every captured line is written back to stderr except the
  `I0000`/`W0000`/`E0000`-style lines below the effective level, the absl
  line and the CPU-feature continuation line. An import that fails gets all
  of its output back.
- The Python loggers `absl` (Keras' warnings) and `tensorflow` are set to
  ERROR when their level is still unset.

`TF_ENABLE_ONEDNN_OPTS` is never touched: it changes the numerics.

Where it runs: `crisis_keras/__init__.py` calls `quiet_start` when Python is
starting `python -m crisis_keras.<command>` (`sys.argv[0]` is "-m" while the
module is being located), before any subpackage loads (`crisis_keras.serving`
imports TensorFlow itself); every command's `main` parses its arguments with
`parse_args` below, which adds `--verbose` and calls `quiet_start` for
in-process calls of `main`. A plain library import changes nothing.
"""

import argparse
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile

VERBOSE_HELP = "keep TensorFlow's start-up and C++ log messages (hidden by default)."
QUIET_LEVEL = "3"

# glog/absl line prefix: severity letter, MMDD, time, thread, file:line]
_LOG_LINE = re.compile(rb"^([IWEF])\d{4} \d\d:\d\d:\d+(?:\.\d+)? +\d+ [^ \]]+:\d+\] ")
_SEVERITY = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}
_ABSL_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called"
_CPU_GUARD_CONTINUATION = b"To enable the following instructions:"


_VERBOSE_DEST = "_crisis_keras_verbose"


def parse_args(parser, argv=None):
    """`parser.parse_args(argv)`, then `quiet_start(verbose=...)`.

    A parser without `--verbose` gets one, whose value is kept out of the
    returned namespace (so `vars(args)` holds only the command's own options);
    a parser that has one (the REST server's) keeps it and its meaning, and
    `--verbose` also keeps TensorFlow's messages.
    """
    added = "--verbose" not in parser._option_string_actions
    if added:
        parser.add_argument("--verbose", action="store_true", dest=_VERBOSE_DEST, help=VERBOSE_HELP)
        for sub in _subparsers(parser):  # `summary --verbose` as well as `--verbose summary`
            sub.add_argument("--verbose", action="store_true", dest=_VERBOSE_DEST,
                             default=argparse.SUPPRESS, help=VERBOSE_HELP)
    args = parser.parse_args(argv)
    if added:
        verbose = getattr(args, _VERBOSE_DEST)
        delattr(args, _VERBOSE_DEST)
    else:
        verbose = bool(getattr(args, "verbose", False))
    quiet_start(verbose=verbose)
    return args


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                if "--verbose" not in sub._option_string_actions:
                    yield sub


def quiet_start(verbose: bool = False) -> None:
    """Hide TensorFlow's start-up noise (see the module docstring); a no-op
    when `verbose` or when TensorFlow is already imported."""
    if verbose:
        return
    for name in ("absl", "tensorflow"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.ERROR)
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_LEVEL)
    if not any(isinstance(f, _FilteredTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _FilteredTensorFlowImport())


def _min_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def filter_startup_lines(data: bytes, min_level: int) -> bytes:
    """`data` without the log lines below `min_level` (0 keeps everything)."""
    if min_level <= 0:
        return data
    kept = []
    dropped_previous = False
    for line in data.splitlines(keepends=True):
        match = _LOG_LINE.match(line)
        if match:
            dropped_previous = _SEVERITY[match.group(1)] < min_level
        elif line.startswith(_ABSL_PREAMBLE):
            dropped_previous = True
        elif line.startswith(_CPU_GUARD_CONTINUATION):
            pass  # belongs to the cpu_feature_guard line before it
        else:
            dropped_previous = False
        if not dropped_previous:
            kept.append(line)
    return b"".join(kept)


class _FilteredTensorFlowImport(importlib.abc.MetaPathFinder):
    """Runs the first `import tensorflow` with its stderr filtered."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once only; also keeps find_spec below from recursing
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _FilteredLoader(spec.loader)
        return spec


class _FilteredLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = self.loader  # look like a normal import afterwards
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        with _StderrFilter(_min_level()):
            self.loader.exec_module(module)


class _StderrFilter:
    """Send fd 2 to a temporary file; on exit write back what the filter keeps
    (everything if the block raised)."""

    def __init__(self, min_level: int):
        self.min_level = min_level
        self.saved = None

    def __enter__(self):
        try:
            sys.stderr.flush()
            self.tmp = tempfile.TemporaryFile()
            self.saved = os.dup(2)
            os.dup2(self.tmp.fileno(), 2)
        except (OSError, ValueError, AttributeError):  # no real fd 2: leave it alone
            self.saved = None
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.saved is None:
            return False
        try:
            sys.stderr.flush()
        except (OSError, ValueError, AttributeError):
            pass
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.tmp.seek(0)
        data = self.tmp.read()
        self.tmp.close()
        out = data if exc_type is not None else filter_startup_lines(data, self.min_level)
        while out:
            out = out[os.write(2, out):]
        return False
