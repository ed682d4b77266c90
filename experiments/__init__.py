"""The paper's tables: spec (`spec.py`), runner (`runner.py`), report (`report.py`).

Not part of the installed package (setup.cfg installs `crisis_keras*` only);
run the command line as `python experiments/paper_tables.py ...` from the
repository root.
"""
