"""Where a backbone's weights come from: `--weights imagenet|none|PATH`.

Pretrained weights always go through the library's own loading path (the constructor with
weights="imagenet" / "noisy-student", reading Keras's cache folder): Keras's EfficientNet
adds an input rescaling layer only on that path, so building with weights=None and loading
the same file afterwards gives a network fed wrongly scaled inputs. A PATH that holds the
library's file (or a folder with it, as a Kaggle dataset attached to an offline kernel
provides) is linked into the cache first; any other file is loaded as is, into the backbone
built with random weights (a file saved by this kit, for instance).

`--weights imagenet` loads the backbone's own weight tag (noisy-student for efficientnet_b0_ns); another
tag's name is refused (`--weights noisy-student` on efficientnet_b0): the tag is chosen with the
backbone's name (src.models.backbones), because it decides the library and the preprocessing.

Nothing ever falls back to random weights silently: a missing file is an error within seconds.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

from src.core.errors import KitError

PRETRAINED_NAMES = ("imagenet", "noisy-student", "pretrained")
ANY_TAG = ("imagenet", "pretrained")  # the backbone's own tag's weights, whichever tag it is (noisy-student for _ns)
DOWNLOAD_TIMEOUT_S = 10  # a machine with no internet answers at once; a black hole would hang


def keras_cache_dir() -> Path:
    """Return the folder where Keras looks for downloaded weights: $KERAS_HOME/models, else ~/.keras/models.

    The rule keras.utils.get_file documents (with /tmp/.keras when the home folder is read-only),
    spelled out here because Keras exposes it only through a private module.
    """
    if os.environ.get("KERAS_HOME"):
        return Path(os.environ["KERAS_HOME"]) / "models"
    home = Path.home()
    base = home if os.access(home, os.W_OK) else Path("/tmp")
    return base / ".keras" / "models"


def resolve_weights(spec, weights: str):
    """Return (weights argument for the library constructor, extra file to load afterwards or None)."""
    choice = (weights or "none").strip()
    if choice.lower() == "none":
        return None, None
    if choice.lower() in PRETRAINED_NAMES:
        if not spec.pretrained:
            raise KitError(f"{spec.name} has no pretrained weights: use --weights none or --weights PATH")
        check_tag(spec, choice.lower())
        attached = find_attached(spec)
        if attached is not None:  # an offline kernel's weights dataset: no download needed
            print(f"weights: {spec.name} uses {attached}")
            link_into_cache(attached, spec)
        ensure_cached(spec)
        return spec.pretrained, None
    path = Path(choice)
    if path.is_dir():
        found = find_weights_file(path, spec.weights_file) if spec.weights_file else None
        if found is None:
            raise KitError(f"--weights {path}: no {spec.weights_file or 'weights file'} for {spec.name} in that "
                           f"folder; expected the file its library uses ({spec.weights_url or 'none'})")
        link_into_cache(found, spec)
        return spec.pretrained, None
    if path.is_file():
        if spec.weights_file and path.name == spec.weights_file:
            link_into_cache(path, spec)
            return spec.pretrained, None
        return None, path
    raise KitError(f"--weights {choice}: no such file or folder; expected imagenet, none, a weights "
                   f"file or a folder holding {spec.weights_file or 'the weights file'}")


def check_tag(spec, choice: str) -> None:
    """Refuse --weights naming another weight tag than the backbone's (noisy-student for efficientnet_b0).

    The tag decides the library, the constructor and the preprocessing, so it is part of the backbone's
    name (efficientnet_b0:noisy-student, alias efficientnet_b0_ns); loading the backbone's own weights
    under another tag's name would train something other than what the run says.
    """
    if choice in ANY_TAG or choice == spec.pretrained:
        return
    named = f"{spec.architecture or spec.name}:{choice}"
    raise KitError(f"--weights {choice}: backbone {spec.name} loads its {spec.pretrained} weights; {choice} weights "
                   f"are another weight tag, named with the backbone: --backbone {named} (python -m src.backbones "
                   "lists each architecture's tags), or --weights imagenet")


def inputs_root() -> Path:
    """Return where attached datasets and models are mounted: /kaggle/input ($KIT_INPUTS elsewhere)."""
    return Path(os.environ.get("KIT_INPUTS", "/kaggle/input"))


def find_attached(spec) -> Path | None:
    """Return the library's weights file for spec in an attached input (up to four folders deep), or None."""
    root = inputs_root()
    if not spec.weights_file or not root.is_dir() or (keras_cache_dir() / spec.weights_file).is_file():
        return None
    for depth in range(1, 5):  # a bounded search: /kaggle/input can hold whole competitions
        found = sorted(p for p in root.glob("/".join(["*"] * depth) + "/" + spec.weights_file) if p.is_file())
        if found:
            return found[0]
    return None


def find_weights_file(folder: Path, name: str) -> Path | None:
    """Return folder/name or the first file of that name below it (Kaggle datasets nest folders)."""
    direct = folder / name
    if direct.is_file():
        return direct
    return next((p for p in sorted(folder.rglob(name)) if p.is_file()), None)


def link_into_cache(source: Path, spec) -> Path:
    """Make the library's cache hold `source` under its file name (a link; an existing real file is kept)."""
    cache = keras_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / spec.weights_file
    if target.is_symlink() or not target.exists():
        if target.is_symlink():
            target.unlink()
        target.symlink_to(source.resolve())
    elif target.resolve() != source.resolve():
        print(f"weights: {target} already exists and is used; remove it to use {source}")
    return target


def ensure_cached(spec) -> Path:
    """Return the cached pretrained file, downloading it first; fail fast with how to supply it."""
    target = keras_cache_dir() / spec.weights_file
    if target.is_file():
        return target
    import keras

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return Path(keras.utils.get_file(spec.weights_file, spec.weights_url, cache_subdir="models"))
    except Exception as err:  # urllib raises URLError, socket.timeout, HTTPError ...
        partial = target.with_name(target.name + ".part")
        if partial.exists():
            os.remove(partial)
        raise KitError(
            f"{spec.name}: cannot fetch its {spec.pretrained} weights {spec.weights_file} from "
            f"{spec.weights_url} ({type(err).__name__}: {err}). Supply the file: --weights PATH (the file, "
            f"or a folder holding it, e.g. a Kaggle dataset attached to the kernel), or copy it to "
            f"{target}; --weights none trains from random weights") from None
    finally:
        socket.setdefaulttimeout(previous)


def load_weights_file(model, path, name: str) -> None:
    """Load a weights file into a backbone; a mismatch names the file and the backbone."""
    try:
        model.load_weights(str(path))
    except Exception as err:  # Keras raises ValueError or OSError with the detail
        raise KitError(f"--weights {path}: cannot load into {name}: {err}") from None


def cached_weights(spec) -> Path | None:
    """Return the file the library will read for spec's pretrained weights (a linked input's own path), or None."""
    target = keras_cache_dir() / spec.weights_file
    return target.resolve() if spec.weights_file and target.exists() else None


def refetched(err: Exception) -> bool:
    """Return True when the library tried to download weights it had in its cache.

    keras.utils.get_file checks a cached file's hash and downloads again when it differs, so
    a download attempt for a file that was there means its content is not the library's.
    """
    return str(err).startswith("URL fetch failure")


def not_the_library_file(spec, path: Path, err: Exception) -> KitError:
    """Return the error for a weights file that has the library's name but not its content."""
    return KitError(f"{path}: named like {spec.name}'s {spec.pretrained} weights ({spec.weights_file}), but it is not "
                    f"the library's file: its hash differs, so Keras tried to download the real one and failed "
                    f"({str(err).splitlines()[0]}). Attach the file from {spec.weights_url}; a file this kit "
                    f"saved goes under another name with --weights PATH")
