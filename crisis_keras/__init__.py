"""crisis_keras: SSE-Cross-BERT-DenseNet (Abavisani et al., CVPR 2020) in Keras 3."""

import sys as _sys

__version__ = "0.1.0"

if _sys.argv[:1] == ["-m"]:  # `python -m crisis_keras.<command>` is starting: before any
    # of its packages imports TensorFlow, hide TensorFlow's start-up noise unless
    # --verbose (crisis_keras/_quiet.py; library imports are left alone).
    from crisis_keras._quiet import quiet_start as _quiet_start

    _quiet_start(verbose="--verbose" in _sys.argv[1:])
