"""The paper's Table 2 ("Number of samples in different splits of our settings"), as printed.

Used for the proportions of `--split paper` (`paper_split.py`) and printed next
to our counts by `python -m crisis_keras.data summary`. Task1 = informative,
Task2 = humanitarian (the paper's five classes), Task3 = damage severity;
Setting C's experiments (Table 7's training events) are humanitarian and have
no dev set (section 4.5 tunes on 15% of the training samples).
"""

# (setting, task) -> (train, dev, test) pairs.
PAPER_SPLIT_COUNTS = {
    ("A", "informative"): (7876, 553, 2821),
    ("A", "humanitarian"): (1352, 540, 1467),
    ("A", "severity"): (2590, 340, 358),
    ("B", "informative"): (12680, 553, 2821),
    ("B", "humanitarian"): (5433, 540, 1467),
}
# Setting C experiment -> training pairs; every experiment tests on the same 217.
PAPER_SETTING_C_TRAIN = {1: 174, 2: 4037, 3: 4761}
PAPER_SETTING_C_TEST = 217
