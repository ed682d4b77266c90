"""A decoded-image cache: every image once, resized, as uint8 shards (issue 11).

`python -m crisis_keras.data cache-images --output DIR` decodes every image of
a dataset once, resizes its shortest side to `resize_to` (228) with the
pipeline's own ops (`images.resize_shortest_side`) and stores the pixels,
rounded to uint8, in flat raw shards. `make_dataset(..., image_cache=DIR)`
then reads them, memory-mapped, instead of decoding JPEGs every epoch, and
applies the same random crop + flip (the same stateless seeds) or center crop.

Layout of a cache folder:

    manifest.json      format, resize_to, resize method, complete; per image
                       (by path, as the table gives it): size, mtime_ns,
                       shard, offset, height, width; unusable images with
                       their reason ("bad")
    shard-00000.bin    raw uint8 pixels, [height, width, 3] per image, one
                       after the other (a new shard past `SHARD_BYTES`)

Rounding. The resize gives float32 in 0..255; the cache stores `round(x)`
(half to even), so a cached pixel differs from the JPEG path's by at most
0.5, before and after the crop (crops and flips move pixels, never mix them).

Staleness. Every image a dataset uses is compared (size, mtime_ns) with the
manifest: a changed file, or one the cache lacks, is refused with its name,
TSV row and the command that rebuilds the cache, or re-cached in place with
`ImageCache(directory, update=True)`. Building again re-caches only new and
changed images. A cache of another `resize_to` or resize method is refused.
Images that were bad at build time (`on_bad_image="drop"`) are recorded as
bad, so the pipeline treats them as `check_images` would.

Writes. Shard bytes are flushed before the manifest that points at them, and
the manifest is replaced atomically every `CHECKPOINT_IMAGES` images and at
the end. A build that stops (an error, a kill) leaves `"complete": false`,
which readers refuse, and the next build keeps every image already written.
Re-cached images are appended; their old bytes stay unused (build into a new
folder to compact).
"""

import contextlib
import dataclasses
import json
import os
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
import tensorflow as tf

from crisis_keras.data import images
from crisis_keras.data import pipeline
from crisis_keras.data.pipeline import IMAGE_COLUMN, BadImage, BadImageReport, ImageError

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
SHARD_BYTES = 256 << 20
CHECKPOINT_IMAGES = 1024
CHANNELS = 3
RESIZE_METHOD = "resize_shortest_side bilinear antialias, round half to even, uint8"
BUILD_MODES = ("error", "drop")
_MAX_LISTED = 5


class ImageCacheMismatch(ValueError):
    """An image cache that cannot serve the images asked for (stale, other
    resize, unfinished, damaged)."""


def cached_pixels(image_bytes, resize_to=images.RESIZE_TO):
    """Encoded bytes -> the cached uint8 `[H, W, 3]`: the pipeline's decode and
    resize, rounded (at most 0.5 from `images.resize_shortest_side`)."""
    resized = images.resize_shortest_side(images.decode_image(image_bytes), resize_to)
    return tf.cast(tf.round(resized), tf.uint8)


def _stat(path) -> Optional[Tuple[int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return int(st.st_size), int(st.st_mtime_ns)


def read_manifest(directory) -> Dict:
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: is {directory} an image cache made by "
            "`python -m crisis_keras.data cache-images`?"
        )
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT_VERSION:
        raise ImageCacheMismatch(
            f"{path} has image-cache format {manifest.get('format')!r}; this version reads "
            f"format {FORMAT_VERSION}. Build the cache again."
        )
    return manifest


def write_manifest(directory, manifest: Dict) -> None:
    """Atomically (a temporary file renamed over the manifest)."""
    path = Path(directory) / MANIFEST_FILE
    tmp = path.with_name(MANIFEST_FILE + ".tmp")
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def _new_manifest(resize_to: int) -> Dict:
    return {
        "format": FORMAT_VERSION, "resize_to": int(resize_to), "resize_method": RESIZE_METHOD,
        "dtype": "uint8", "channels": CHANNELS, "complete": False, "command": None,
        "source": None, "shards": {}, "images": {}, "bad": {},
    }


def _check_resize(manifest: Dict, resize_to: int, directory) -> None:
    if manifest["resize_to"] != resize_to or manifest.get("resize_method") != RESIZE_METHOD:
        raise ImageCacheMismatch(
            f"the image cache {directory} holds images resized to {manifest['resize_to']} "
            f"({manifest.get('resize_method')}); requested {resize_to} ({RESIZE_METHOD}). "
            "Build a cache with `python -m crisis_keras.data cache-images --resize-to "
            f"{resize_to}` into another --output, or train with --resize-to "
            f"{manifest['resize_to']}."
        )


def _rebuild_hint(manifest: Dict, directory) -> str:
    command = manifest.get("command") or (
        f"python -m crisis_keras.data cache-images --data-dir DATA_DIR --output {directory}"
    )
    return f"`{command}` (it re-caches only new and changed images)"


def _key(manifest: Dict, abspaths: Dict[str, str], path: str) -> Optional[str]:
    """The manifest key of `path`: itself, or an entry of the same absolute path."""
    if path in manifest["images"] or path in manifest["bad"]:
        return path
    return abspaths.get(os.path.abspath(path))


def _abspaths(manifest: Dict) -> Dict[str, str]:
    found = {}
    for section in ("images", "bad"):
        for path, entry in manifest[section].items():
            found[entry.get("abspath", path)] = path
    return found


def _put(manifest: Dict, abspaths: Dict[str, str], section: str, path: str, entry: Dict) -> None:
    """Record `path` in `section` ("images" or "bad"), replacing any entry of it
    (or of another spelling of the same absolute path) in either section."""
    for key in {path, abspaths.get(entry["abspath"])} - {None}:
        manifest["images"].pop(key, None)
        manifest["bad"].pop(key, None)
    manifest[section][path] = entry
    abspaths[entry["abspath"]] = path


def _classify(manifest: Dict, abspaths, path: str, stat) -> Tuple[str, Optional[str]]:
    """("ok" | "bad" | "stale" | "missing", reason or key) for one path now."""
    if stat is None:
        return "missing", "missing file"
    key = _key(manifest, abspaths, path)
    entry = manifest["images"].get(key) if key else None
    if entry is not None and (entry["size"], entry["mtime_ns"]) == stat:
        return "ok", key
    bad = manifest["bad"].get(key) if key else None
    if bad is not None and (bad["size"], bad["mtime_ns"]) == stat:
        return "bad", bad["reason"]
    return "stale", ("changed since it was cached" if entry or bad else "not in the cache")


@dataclasses.dataclass(frozen=True)
class BuildReport:
    """What one `build_image_cache` call did."""

    directory: str
    num_images: int  # distinct usable images the cache now holds for the tables
    cached: int  # decoded and written by this call
    reused: int  # already in the cache, unchanged
    num_bad: int  # distinct unusable images (recorded as bad, or missing files)
    bytes_written: int
    seconds: float  # decoding and writing

    @property
    def images_per_second(self) -> float:
        return self.cached / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        return (
            f"image cache {self.directory}: {self.num_images} images ({self.cached} cached "
            f"now, {self.reused} reused, {self.num_bad} unusable), "
            f"{self.bytes_written / 1e6:.1f} MB written in {self.seconds:.1f} s "
            f"({self.images_per_second:.1f} images/s)"
        )


class _ShardWriter:
    """Appends pixels to new shard files; `checkpoint` publishes them."""

    def __init__(self, directory: Path, manifest: Dict, abspaths: Dict[str, str]):
        self.directory, self.manifest, self.abspaths = directory, manifest, abspaths
        self.file, self.name, self.size = None, None, 0
        self.pending: Dict[str, Dict] = {}
        self.bytes_written = 0

    def _next_name(self) -> str:
        index = 0
        while (f"shard-{index:05d}.bin" in self.manifest["shards"]
               or (self.directory / f"shard-{index:05d}.bin").exists()):
            index += 1
        return f"shard-{index:05d}.bin"

    def add(self, path: str, stat, pixels: np.ndarray) -> None:
        if self.file is None or (self.size and self.size + pixels.nbytes > SHARD_BYTES):
            self.checkpoint()
            self._close()
            self.name = self._next_name()
            self.file = open(self.directory / self.name, "xb")
            self.size = 0
        self.file.write(np.ascontiguousarray(pixels).tobytes())
        self.pending[path] = {
            "abspath": os.path.abspath(path), "size": stat[0], "mtime_ns": stat[1],
            "shard": self.name, "offset": self.size,
            "height": int(pixels.shape[0]), "width": int(pixels.shape[1]),
        }
        self.size += pixels.nbytes
        self.bytes_written += pixels.nbytes

    def checkpoint(self, complete: bool = False) -> None:
        """Flush the shard, then point the manifest at what it holds."""
        if self.file is not None:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.manifest["shards"][self.name] = self.size
        for path, entry in self.pending.items():
            _put(self.manifest, self.abspaths, "images", path, entry)
        self.pending.clear()
        self.manifest["complete"] = complete
        write_manifest(self.directory, self.manifest)

    def _close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def _concat(tables) -> pd.DataFrame:
    if isinstance(tables, pd.DataFrame):
        tables = [tables]
    tables = [t for t in tables if len(t)]
    if not tables:
        raise ValueError("No table rows to cache the images of.")
    columns = [c for c in (IMAGE_COLUMN, "source_file", "source_line") if c in tables[0].columns]
    for t in tables:
        if IMAGE_COLUMN not in t.columns:
            raise KeyError(f"A table has no {IMAGE_COLUMN!r} column (columns: {list(t.columns)}).")
    frame = pd.concat([t[[c for c in columns if c in t.columns]] for t in tables],
                      ignore_index=True)
    frame[IMAGE_COLUMN] = frame[IMAGE_COLUMN].astype(str)
    return frame


def _decoded(paths: Sequence[str], resize_to: int, workers: Optional[int]):
    """(index, uint8 pixels) of every path that decodes, in order."""
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.range(len(paths), dtype=tf.int64), tf.constant(list(paths), tf.string))
    )
    ds = ds.map(
        lambda i, p: (i, cached_pixels(tf.io.read_file(p), resize_to)),
        num_parallel_calls=workers or tf.data.AUTOTUNE, deterministic=True,
    ).ignore_errors().prefetch(4)
    for index, pixels in ds.as_numpy_iterator():
        yield int(index), pixels


def build_image_cache(
    directory,
    tables,
    *,
    resize_to: int = images.RESIZE_TO,
    on_bad_image: str = "error",
    workers: Optional[int] = None,
    command: Optional[str] = None,
    source: Optional[Dict] = None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> BuildReport:
    """Cache every distinct image of `tables` in `directory` (created or updated).

    Args:
        directory: the cache folder; an existing cache of the same `resize_to`
            is updated (new and changed images only), another is refused.
        tables: a table or tables with an `image_path` column (and
            `source_file`/`source_line`, named in errors).
        resize_to: the shortest side (the pipeline's `resize_to`).
        on_bad_image: `"error"` raises `ImageError` naming the missing or
            undecodable files and their TSV rows, before anything is written;
            `"drop"` records them as bad and caches the rest.
        workers: parallel decodes (default: tf.data's autotuning).
        command, source: recorded in the manifest (the rebuild command that
            staleness errors name, and what the images came from).
        progress: called as `progress(done, total)` while decoding.
    """
    if on_bad_image not in BUILD_MODES:
        raise ValueError(f"on_bad_image must be one of {BUILD_MODES}, got {on_bad_image!r}.")
    directory = Path(directory)
    table = _concat(tables)
    if (directory / MANIFEST_FILE).exists():
        manifest = read_manifest(directory)
        _check_resize(manifest, resize_to, directory)
    else:
        if directory.exists() and any(directory.iterdir()):
            raise FileExistsError(
                f"{directory} exists and is not an image cache (no {MANIFEST_FILE}); "
                "choose an empty or new --output folder."
            )
        manifest = _new_manifest(resize_to)
    previous = {"command": manifest.get("command"), "source": manifest.get("source")}
    manifest["command"] = command or manifest.get("command")
    manifest["source"] = source or manifest.get("source")
    abspaths = _abspaths(manifest)

    paths = list(dict.fromkeys(table[IMAGE_COLUMN]))
    stats = {p: _stat(p) for p in paths}
    state = {p: _classify(manifest, abspaths, p, stats[p]) for p in paths}
    todo = [p for p in paths if state[p][0] == "stale"]
    todo_rows = table[table[IMAGE_COLUMN].isin(set(todo))]
    found = pipeline.check_images(todo_rows) if len(todo_rows) else None
    new_bad = {b.path: b.reason for b in found.bad} if found else {}
    reasons = {p: s[1] for p, s in state.items() if s[0] in ("bad", "missing")}
    reasons.update(new_bad)

    def report_of(bad_paths) -> BadImageReport:
        column = table[IMAGE_COLUMN]
        bad = tuple(
            BadImage(int(r), column.iloc[r], reasons[column.iloc[r]], pipeline._location(table, int(r)))
            for r in np.flatnonzero(column.isin(set(bad_paths)).to_numpy())
        )
        return BadImageReport(num_checked=len(table), bad=bad)

    if reasons and on_bad_image == "error":
        raise ImageError(
            report_of(reasons).summary()
            + ". Fix the paths (--image-root?) or pass --on-bad-image drop."
        )
    to_decode = [p for p in todo if p not in new_bad]
    usable = [p for p in paths if p not in reasons]
    if not todo and manifest["complete"]:  # nothing new: leave the cache as it is
        if (manifest["command"], manifest["source"]) != (previous["command"], previous["source"]):
            write_manifest(directory, manifest)
        return BuildReport(directory=str(directory), num_images=len(usable), cached=0,
                           reused=len(usable), num_bad=len(reasons), bytes_written=0, seconds=0.0)
    writer = _ShardWriter(directory, manifest, abspaths)
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    failed: List[str] = []
    try:
        for path, reason in new_bad.items():
            if stats[path] is not None:
                _put(manifest, abspaths, "bad", path, {
                    "abspath": os.path.abspath(path), "size": stats[path][0],
                    "mtime_ns": stats[path][1], "reason": reason})
        writer.checkpoint()  # "complete": false until every image is written
        expected = 0
        for index, pixels in _decoded(to_decode, resize_to, workers):
            failed.extend(to_decode[expected:index])  # skipped by ignore_errors
            expected = index + 1
            writer.add(to_decode[index], stats[to_decode[index]], pixels)
            if len(writer.pending) >= CHECKPOINT_IMAGES:
                writer.checkpoint()
            if progress is not None:
                progress(index + 1, len(to_decode))
        failed.extend(to_decode[expected:])
        for path in failed:  # decodable at 1/8 scale (check_images), not in full
            reasons[path] = pipeline._decode_error(path)
            _put(manifest, abspaths, "bad", path, {
                "abspath": os.path.abspath(path), "size": stats[path][0],
                "mtime_ns": stats[path][1], "reason": reasons[path]})
        if failed and on_bad_image == "error":
            writer.checkpoint()
            raise ImageError(
                report_of(failed).summary()
                + ". Fix the files or pass --on-bad-image drop (the images cached so far "
                "are kept)."
            )
        writer.checkpoint(complete=True)
    except BaseException:
        with contextlib.suppress(Exception):
            writer.checkpoint()  # keep what is written; the cache stays unfinished
        raise
    finally:
        writer._close()
    seconds = time.perf_counter() - started
    usable = [p for p in paths if p not in reasons]  # `failed` ones are in `reasons` now
    return BuildReport(
        directory=str(directory), num_images=len(usable),
        cached=len(to_decode) - len(failed), reused=len(usable) - (len(to_decode) - len(failed)),
        num_bad=len(reasons), bytes_written=writer.bytes_written, seconds=seconds,
    )


def dataset_tables(
    data_dir,
    tasks: Optional[Iterable[str]] = None,
    *,
    data_format: str = "crisismmd",
    image_root=None,
    allow_outside_root: bool = False,
) -> List[pd.DataFrame]:
    """Every split file's table of `tasks` (default: every task with files), as
    the loaders read them: the images of every setting, split and event."""
    from crisis_keras.data import crisismmd, medic
    from crisis_keras.data.tasks import TASK_NAMES

    names = list(tasks) if tasks else list(TASK_NAMES)
    data_dir = Path(data_dir)
    # The image root as the loaders (`load_crisismmd`, `load_medic`) choose it: same paths.
    if data_format == "medic":
        root = Path(image_root) if image_root else data_dir
    else:
        root = Path(image_root) if image_root else crisismmd.default_image_root(data_dir)
    tables = []
    for name in names:
        try:
            if data_format == "medic":
                frames = medic.read_medic_splits(data_dir, name, image_root=root,
                                                 allow_outside_root=allow_outside_root)
            else:
                frames = crisismmd.read_splits(data_dir, name, crisismmd.SPLITS,
                                               image_root=root,
                                               allow_outside_root=allow_outside_root)
        except FileNotFoundError:
            if tasks:  # asked for by name
                raise
            continue
        tables.extend(frames.values())
    if not tables:
        raise FileNotFoundError(f"No {data_format} split files for tasks {names} in {data_dir}.")
    return tables


class ImageCache:
    """A finished image cache (see module doc), read memory-mapped.

    Args:
        directory: the cache folder.
        update: re-cache changed and new images when a dataset asks for them
            (instead of refusing them).

    Raises:
        FileNotFoundError: no manifest there.
        ImageCacheMismatch: unfinished, of another format, or a shard is short.
    """

    def __init__(self, directory, update: bool = False):
        self.directory = Path(directory)
        self.update = bool(update)
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        manifest = read_manifest(self.directory)
        if not manifest.get("complete"):
            raise ImageCacheMismatch(
                f"the image cache {self.directory} is unfinished (a build was interrupted "
                f"or failed): run {_rebuild_hint(manifest, self.directory)} again to finish it."
            )
        for name, size in manifest["shards"].items():
            path = self.directory / name
            if not path.is_file() or path.stat().st_size < size:
                raise ImageCacheMismatch(
                    f"the image cache {self.directory} is damaged: {path} is missing or shorter "
                    f"than {size} bytes. Build it again into a new folder."
                )
        self.manifest = manifest
        self._abspaths = _abspaths(manifest)
        self._shard_names = sorted(manifest["shards"])
        self._shard_index = {name: i for i, name in enumerate(self._shard_names)}
        self._memmaps: Dict[int, np.ndarray] = {}

    @property
    def resize_to(self) -> int:
        return int(self.manifest["resize_to"])

    def __len__(self) -> int:
        return len(self.manifest["images"])

    def require_resize_to(self, resize_to: int) -> None:
        _check_resize(self.manifest, resize_to, self.directory)

    def check_images(self, table: pd.DataFrame, column: str = IMAGE_COLUMN) -> BadImageReport:
        """`pipeline.check_images` from the manifest: missing files and images
        recorded as bad are reported; changed or uncached ones are refused
        (`ImageCacheMismatch`) or, with `update`, re-cached first."""
        if column not in table.columns:
            raise KeyError(f"The table has no {column!r} column (columns: {list(table.columns)}).")
        for attempt in range(2):
            paths = [str(p) for p in table[column].tolist()]
            states = [_classify(self.manifest, self._abspaths, p, _stat(p)) for p in paths]
            stale = [r for r, s in enumerate(states) if s[0] == "stale"]
            if not stale:
                break
            if not self.update or attempt:
                listed = "; ".join(
                    f"{paths[r]} ({states[r][1]}; {pipeline._location(table, r)})"
                    for r in stale[:_MAX_LISTED]
                )
                more = f"; ... and {len(stale) - _MAX_LISTED} more" if len(stale) > _MAX_LISTED else ""
                raise ImageCacheMismatch(
                    f"{len(stale)} of {len(paths)} images are not in the image cache "
                    f"{self.directory} as they are now: {listed}{more}. Rebuild the cache: run "
                    f"{_rebuild_hint(self.manifest, self.directory)}."
                )
            build_image_cache(self.directory, table.iloc[stale].rename(columns={column: IMAGE_COLUMN}),
                              resize_to=self.resize_to, on_bad_image="drop")
            self._load()
        bad = tuple(
            BadImage(r, paths[r], s[1], pipeline._location(table, r))
            for r, s in enumerate(states) if s[0] in ("bad", "missing")
        )
        return BadImageReport(num_checked=len(paths), bad=bad)

    def locations(self, paths: Sequence[str]) -> np.ndarray:
        """int64 `[N, 4]`: (shard, offset, height, width) per path; -1 where the
        cache holds no pixels (bad or missing images)."""
        out = np.full((len(paths), 4), -1, dtype=np.int64)
        for i, path in enumerate(paths):
            key = _key(self.manifest, self._abspaths, str(path))
            entry = self.manifest["images"].get(key) if key else None
            if entry is not None:
                out[i] = (self._shard_index[entry["shard"]], entry["offset"],
                          entry["height"], entry["width"])
        return out

    def _memmap(self, shard: int) -> np.ndarray:
        mm = self._memmaps.get(shard)
        if mm is None:
            with self._lock:
                mm = self._memmaps.get(shard)
                if mm is None:
                    path = self.directory / self._shard_names[shard]
                    mm = self._memmaps[shard] = np.memmap(path, dtype=np.uint8, mode="r")
        return mm

    def read(self, shard: int, offset: int, height: int, width: int) -> np.ndarray:
        """uint8 `[height, width, 3]` of one cached image (a copy)."""
        if shard < 0:
            raise ImageCacheMismatch("no cached pixels for this image (bad or missing).")
        n = height * width * CHANNELS
        return np.array(self._memmap(shard)[offset:offset + n]).reshape(height, width, CHANNELS)

    def pixels(self, location) -> tf.Tensor:
        """Graph op: a `locations` row -> uint8 `[H, W, 3]` (read in `numpy_function`)."""

        def read(loc):
            return self.read(*(int(v) for v in loc))

        image = tf.numpy_function(read, [location], tf.uint8, stateful=False)
        image.set_shape([None, None, CHANNELS])
        return image


def as_image_cache(cache: Union["ImageCache", str, os.PathLike]) -> ImageCache:
    """`cache` itself, or the `ImageCache` of that folder."""
    return cache if isinstance(cache, ImageCache) else ImageCache(cache)
