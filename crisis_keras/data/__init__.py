"""CrisisMMD data layer: tasks, tweet normalization, TSV reading, settings A/B/C.

Importing this package does not import TensorFlow; only
`normalize_tweet_tf` does, when called.
"""

from crisis_keras.data.consistency import make_consistent
from crisis_keras.data.crisismmd import COLUMNS
from crisis_keras.data.crisismmd import SPLITS
from crisis_keras.data.crisismmd import CrisisMMD
from crisis_keras.data.crisismmd import CrisisMMDFormatError
from crisis_keras.data.crisismmd import default_image_root
from crisis_keras.data.crisismmd import find_split_file
from crisis_keras.data.crisismmd import load_crisismmd
from crisis_keras.data.crisismmd import read_split_file
from crisis_keras.data.crisismmd import read_splits
from crisis_keras.data.crisismmd import resolve_split_dir
from crisis_keras.data.normalize import fix_mojibake
from crisis_keras.data.normalize import normalize_tweet
from crisis_keras.data.normalize import normalize_tweet_tf
from crisis_keras.data.settings import SETTING_C_EXPERIMENTS
from crisis_keras.data.settings import SETTING_C_TEST_EVENT
from crisis_keras.data.settings import SETTINGS
from crisis_keras.data.settings import select_setting
from crisis_keras.data.tasks import TASK_NAMES
from crisis_keras.data.tasks import Task
from crisis_keras.data.tasks import get_task

__all__ = [
    "COLUMNS",
    "CrisisMMD",
    "CrisisMMDFormatError",
    "default_image_root",
    "find_split_file",
    "fix_mojibake",
    "get_task",
    "load_crisismmd",
    "make_consistent",
    "normalize_tweet",
    "normalize_tweet_tf",
    "read_split_file",
    "read_splits",
    "resolve_split_dir",
    "select_setting",
    "SETTING_C_EXPERIMENTS",
    "SETTING_C_TEST_EVENT",
    "SETTINGS",
    "SPLITS",
    "Task",
    "TASK_NAMES",
]
