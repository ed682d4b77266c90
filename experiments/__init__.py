"""One runnable spec per table of the paper (`experiments/paper_tables.py`).

Not part of the installed package (setup.cfg installs `crisis_keras*` only);
run it as `python experiments/paper_tables.py ...` from the repository root.
"""
