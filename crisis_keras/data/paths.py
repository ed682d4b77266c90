"""Image paths from a table stay inside their image root.

A TSV (training data, `predict` input) names each image relative to an image
root. `inside_root` joins the two and refuses a path that resolves outside the
root: `../../etc/passwd`, an absolute path, a symlink pointing out (symlinks
are resolved, so a root that is itself a symlink is fine). With
`allow_outside=True` (`--allow-outside-root`) the joined path is returned
unchecked, as before. A path inside the root need not exist: whether the file
is there is checked where it is read.
"""

import functools
import os
import pathlib


class OutsideRootError(ValueError):
    """An image path that resolves outside its image root."""


@functools.lru_cache(maxsize=4096)
def _real_dir(folder: str) -> str:
    return os.path.realpath(folder)


def inside_root(root, name, allow_outside: bool = False) -> pathlib.Path:
    """`root / name`, or raises `OutsideRootError` when it resolves outside `root`."""
    path = pathlib.Path(root) / name
    if allow_outside:
        return path
    real_root = _real_dir(os.fspath(root))
    # Folders repeat across rows (data_image/<event>/<date>/): resolve each once,
    # then the file itself (one lstat) in case it is a symlink.
    folder, base = os.path.split(os.fspath(path))
    real = os.path.normpath(os.path.join(_real_dir(folder), base)) if folder else _real_dir(base)
    if os.path.islink(real):
        real = os.path.realpath(real)
    if real != real_root and os.path.commonpath([real_root, real]) != real_root:
        why = ("is absolute" if os.path.isabs(name) else
               "climbs out with '..'" if ".." in pathlib.PurePath(name).parts else
               "passes through a symlink")
        raise OutsideRootError(
            f"image path {name!r} {why} and resolves to {real}, outside the image root "
            f"{real_root} (pass --allow-outside-root to allow it)")
    return path
