"""Finding image files and checking them before any training starts.

A Kaggle folder can hold zero-byte files, truncated downloads, text files and images in
formats TensorFlow cannot decode. Checking each file once here (header, EXIF orientation,
a reduced-size decode that reads the whole compressed stream) turns what would be a crash
deep inside tf.data in epoch 3 into a report naming the files, before anything runs.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

# What tf.io.decode_image reads; anything else would fail inside the pipeline.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")  # WebP: TensorFlow 2.18 and later
DECODABLE_FORMATS = {"JPEG", "PNG", "BMP", "GIF", "MPO", "WEBP"}
IGNORED_NAMES = {"thumbs.db", "desktop.ini"}
EXIF_ORIENTATION = 0x0112


def is_image_name(name: str) -> bool:
    """Return True when a file name has one of the image extensions the pipeline decodes."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def list_folder(folder: Path) -> tuple[list[Path], list[Path]]:
    """Return (image files, other files) directly in `folder`, sorted; hidden files are ignored."""
    images, others = [], []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not entry.is_file() or entry.name.startswith(".") or entry.name.lower() in IGNORED_NAMES:
            continue
        (images if is_image_name(entry.name) else others).append(Path(entry.path))
    return images, others


def inspect_image(path: str | Path) -> dict:
    """Return {width, height, orientation, error} for one file; `error` is '' for a good image.

    width and height are as displayed, after the EXIF orientation is applied.
    """
    from PIL import Image  # Pillow ships with matplotlib; imported here to keep `import src` light

    path = Path(path)
    result = {"width": 0, "height": 0, "orientation": 1, "error": ""}
    if printable(str(path)) != str(path):  # CSV files and TensorFlow take UTF-8 paths only
        result["error"] = "its name is not valid UTF-8: rename the file"
        return result
    if not path.is_file():  # a labels CSV can list images its folder lacks
        result["error"] = "no such file"
        return result
    if not is_image_name(path.name):
        result["error"] = f"not an image file: expected one of {', '.join(IMAGE_EXTENSIONS)}"
        return result
    try:
        if path.stat().st_size == 0:
            result["error"] = "empty file (0 bytes)"
            return result
        with Image.open(path) as img:
            if img.format not in DECODABLE_FORMATS:
                result["error"] = f"{img.format} images cannot be decoded by TensorFlow; convert to JPEG or PNG"
                return result
            if img.format == "WEBP" and getattr(img, "n_frames", 1) > 1:  # TensorFlow's decoder crashes on these
                result["error"] = "an animated WebP: TensorFlow decodes still WebP images only; convert to JPEG or PNG"
                return result
            width, height = img.size
            orientation = int(img.getexif().get(EXIF_ORIENTATION, 1) or 1)
            # draft() lets libjpeg decode at 1/8 scale: cheap, yet it still reads every byte,
            # so a truncated download raises here instead of inside tf.data.
            img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            img.load()
    except Exception as err:  # Pillow raises many types (OSError, SyntaxError, ValueError ...)
        result["error"] = f"corrupt or truncated image ({type(err).__name__}: {err})"
        return result
    if orientation in (5, 6, 7, 8):  # these orientations turn the picture by 90 degrees
        width, height = height, width
    result.update(width=width, height=height, orientation=orientation if 1 <= orientation <= 8 else 1)
    return result


def scan_images(paths: list[str | Path], workers: int | None = None) -> pd.DataFrame:
    """Return a frame (path, width, height, orientation, error), one row per path, in input order.

    Threads, because Pillow releases the GIL while decoding.
    """
    paths = [str(p) for p in paths]
    workers = workers or min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        rows = list(pool.map(inspect_image, paths, chunksize=64))
    frame = pd.DataFrame(rows, columns=["width", "height", "orientation", "error"])
    frame.insert(0, "path", paths)
    return frame


def printable(name: str) -> str:
    """Return a file name as text any console prints: bytes that are not UTF-8 shown as \\xNN escapes.

    Linux names are bytes; Python keeps undecodable ones as surrogates, which printing or a CSV
    writer would refuse with UnicodeEncodeError.
    """
    try:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that did not come from the file system
        return name.encode("utf-8", "backslashreplace").decode("utf-8")


def describe_bad(bad: pd.DataFrame, limit: int = 10) -> str:
    """Return 'N file(s): name (why); ...' for a frame of failed scan rows, cut after `limit`."""
    lines = [f"{printable(row.path)} ({row.error})" for row in bad.head(limit).itertuples()]
    more = f"; and {len(bad) - limit} more" if len(bad) > limit else ""
    return f"{len(bad)} file(s): " + "; ".join(lines) + more
