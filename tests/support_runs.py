"""Test support: tiny run folders and encoded images for the export, serving and predict tests.

`write_untrained_run` writes a run folder (config.json, classes.json,
best_model.keras) holding a tiny randomly initialized model, without training,
so serving code can be exercised in seconds. `encode_image` makes JPEG/PNG
bytes from a seeded random image.
"""

import io
import json
from pathlib import Path

import numpy as np

def write_untrained_run(run_dir, model="sse_cross", task="severity",
                        image_size=64, resize_to=68, sequence_length=32, seed=0,
                        **config_overrides):
    """A run folder with a tiny random `model` (tiny BERT / tiny CNN); returns the model.

    `config_overrides` are further `TrainConfig` fields (e.g. `data_dir`).
    """
    import keras

    from crisis_keras.data.tasks import get_task
    from crisis_keras.models import build_model
    from crisis_keras.training.config import TrainConfig

    class_names = list(get_task(task).class_names)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = TrainConfig(task=task, model=model, text_backbone="tiny",
                         image_backbone="tiny", image_weights=None, image_size=image_size,
                         resize_to=resize_to, sequence_length=sequence_length, seed=seed,
                         **config_overrides)
    keras.utils.set_random_seed(seed)
    built = build_model(model, len(class_names), text_backbone="tiny", image_backbone="tiny",
                        image_weights=None, image_size=image_size,
                        sequence_length=sequence_length)
    built.save(run_dir / "best_model.keras")
    (run_dir / "config.json").write_text(config.to_json() + "\n")
    (run_dir / "classes.json").write_text(
        json.dumps({"task": task, "class_names": class_names}) + "\n")
    return built


def encode_image(seed, size=(90, 120), fmt="JPEG"):
    """Bytes of a seeded random RGB image (`size` = height, width) as JPEG or PNG."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
    # Smooth blocks, so JPEG's loss does not dominate the picture.
    pixels = np.repeat(np.repeat(pixels[::8, ::8], 8, axis=0), 8, axis=1)[: size[0], : size[1]]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()
