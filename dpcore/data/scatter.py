"""ScatterNet features: the scattering transform of images (kymatio, J = 2, L = 8), cached on disk.

The transform is a fixed cascade of Morlet wavelet filters, complex moduli and low-pass averaging
(Mallat; Oyallon & Mallat). It has no learned or data-fitted parameters, so an example's features
depend on that example's pixels alone: computing them spends no privacy budget, and DP-SGD on the
features of a dataset is (ε, δ)-DP for the images themselves, with the same ε. On 28x28 greyscale
images it gives 81 channels of 7x7 (1 low-pass, 16 first-order and 64 second-order paths), the
features Tramèr & Boneh (ICLR 2021) train their ScatterNet models on.

By default the features are then standardised per example (``standardize_groups``: Tramèr &
Boneh's GroupNorm with 27 groups and no affine parameters), which is what the ScatterNet models
consume. That step too uses nothing but the example itself, so it is part of the fixed feature map;
applying it once here instead of in every training step leaves the models' function unchanged and
made a DP-SGD step of the linear head several times faster.

Features are computed once per array of images, in batches, and kept in a cache folder
($DPEXPLORER_CACHE, else ``cache`` beside the run store in the user's data folder) under a name made
from the dataset name, a hash of the pixels and the transform's parameters. A cache file carries a
checksum of its features; one that is truncated or altered is recomputed, never trusted.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from dpcore.locations import default_store_path

if TYPE_CHECKING:
    from dpcore.data.types import Dataset

# The models that train on ScatterNet features instead of pixels (see dpcore.dpsgd.models).
SCATTERNET_MODELS = ("scatternet_linear", "scatternet_cnn")

# Per-example normalisation: each example's channels in 27 groups (of 3 for one input channel),
# standardised with that example's own mean and variance over the group (Tramèr & Boneh's choice);
# the epsilon is PyTorch's GroupNorm default, which their results used.
NORM_GROUPS = 27
NORM_EPSILON = 1e-5

ENV_CACHE = "DPEXPLORER_CACHE"
BATCH_IMAGES = 256  # images per transform call: bounds the transform's working memory (a few MiB)
FORMAT_VERSION = 1
_MAGIC = b"DPXSCAT" + bytes([FORMAT_VERSION])
_DIGEST_BYTES = 32  # sha256


@dataclass(frozen=True)
class ScatterParams:
    """The transform: ``J`` scales (features are 2**J times coarser), ``L`` angles, second order;
    then ``standardize_groups`` with ``norm_groups`` groups, or raw coefficients if it is None."""

    J: int = 2
    L: int = 8
    norm_groups: Optional[int] = NORM_GROUPS

    def __post_init__(self) -> None:
        if self.J < 1 or self.L < 1:
            raise ValueError(f"J and L must be at least 1, got J={self.J}, L={self.L}")
        if self.norm_groups is not None and (
            self.norm_groups < 1 or self.channels_per_input_channel % self.norm_groups
        ):
            raise ValueError(
                f"norm_groups={self.norm_groups} does not divide the "
                f"{self.channels_per_input_channel} paths of one input channel"
            )

    @property
    def channels_per_input_channel(self) -> int:
        """1 low-pass + J*L first-order + L*L*J*(J-1)/2 second-order paths (81 for J=2, L=8)."""
        return 1 + self.J * self.L + self.L * self.L * self.J * (self.J - 1) // 2


DEFAULT_PARAMS = ScatterParams()  # what the ScatterNet models consume


def feature_shape(image_shape: tuple[int, ...], params: ScatterParams = DEFAULT_PARAMS) -> tuple[int, int, int]:
    """(height, width, channels) of the features of one (height, width, channels) image: (7, 7, 81) for 28x28x1.

    kymatio pads each side to the next multiple of 2**J beyond it plus 2**J, subsamples by 2**J and
    drops one coefficient at each border.
    """
    height, width, channels = _image_dims(image_shape, params)
    step = 2**params.J
    return ((height + step) // step - 1, (width + step) // step - 1, channels * params.channels_per_input_channel)


def _image_dims(image_shape: tuple[int, ...], params: ScatterParams) -> tuple[int, int, int]:
    shape = tuple(int(d) for d in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"the scattering transform needs (height, width, channels) images, got shape {shape}")
    if min(shape[0], shape[1]) < 2**params.J:
        raise ValueError(f"images of {shape[0]}x{shape[1]} are smaller than 2**J = {2**params.J}")
    return shape[0], shape[1], shape[2]


@functools.lru_cache(maxsize=8)
def _scattering(height: int, width: int, params: ScatterParams) -> object:
    """kymatio's NumPy 2-D scattering for one image size (building its filters takes a fraction of a second).

    Imported from the 2-D frontend module itself: ``kymatio.numpy`` also loads the 3-D transform, which
    imports scipy.special.sph_harm, removed from current SciPy.
    """
    from kymatio.scattering2d.frontend.numpy_frontend import ScatteringNumPy2D

    return ScatteringNumPy2D(J=params.J, shape=(height, width), L=params.L, max_order=2)


def compute_features(
    images: np.ndarray, *, params: ScatterParams = DEFAULT_PARAMS, batch_images: int = BATCH_IMAGES
) -> np.ndarray:
    """Scattering features of (n, height, width, channels) images as float32 (n, h, w, channels * 81),
    standardised per example unless ``params.norm_groups`` is None.

    Channels last, like the images: input channel c's paths are channels c*81 to c*81+80, in
    kymatio's order (low-pass, then first order, then second order). Computed ``batch_images`` at a
    time into one preallocated array, so the memory beyond the result stays small.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"expected a batch of (height, width, channels) images, got shape {images.shape}")
    n, height, width, channels = images.shape
    out_h, out_w, out_c = feature_shape(images.shape[1:], params)
    scattering = _scattering(height, width, params)
    features = np.empty((n, out_h, out_w, out_c), dtype=np.float32)
    for start in range(0, n, batch_images):
        batch = np.asarray(images[start : start + batch_images], dtype=np.float32)
        planes = np.moveaxis(batch, -1, 1)  # (b, channels, height, width): kymatio transforms the last two axes
        coefficients = scattering.scattering(np.ascontiguousarray(planes))  # (b, channels, 81, h, w)
        coefficients = np.moveaxis(coefficients.reshape(len(batch), out_c, out_h, out_w), 1, -1)
        if params.norm_groups is not None:
            coefficients = standardize_groups(coefficients, groups=params.norm_groups)
        features[start : start + len(batch)] = coefficients
    return features


def standardize_groups(
    features: np.ndarray, *, groups: int = NORM_GROUPS, epsilon: float = NORM_EPSILON, batch_examples: int = 4096
) -> np.ndarray:
    """Each example's channels in ``groups`` consecutive groups, standardised over (height, width, group).

    The same function as tf.keras.layers.GroupNormalization(groups, center=False, scale=False) and
    torch.nn.GroupNorm(groups, affine=False): no trainable state, no statistic across examples.
    Float32 out, sums in float64 (mean first, then the centred squares), ``batch_examples`` at a
    time so temporaries stay small. Summing one axis at a time keeps numpy on contiguous rows: about
    15 times faster than one reduction over both axes.
    """
    features = np.asarray(features, dtype=np.float32)
    n, height, width, channels = features.shape
    if channels % groups:
        raise ValueError(f"{channels} channels do not split into {groups} groups")
    size = height * width * (channels // groups)  # values per group
    out = np.empty(features.shape, dtype=np.float32)
    for start in range(0, n, batch_examples):
        block = features[start : start + batch_examples]
        grouped = block.reshape(len(block), height * width, groups, channels // groups)
        mean = grouped.sum(axis=1, dtype=np.float64).sum(axis=2) / size  # (examples, groups)
        centred = grouped - mean[:, None, :, None].astype(np.float32)
        variance = np.square(centred).sum(axis=1, dtype=np.float64).sum(axis=2) / size
        centred *= (1.0 / np.sqrt(variance + epsilon)).astype(np.float32)[:, None, :, None]
        out[start : start + len(block)] = centred.reshape(block.shape)
    return out


# -- the cache -------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """$DPEXPLORER_CACHE, else a ``cache`` folder beside the run store (in the user's data folder)."""
    env = os.environ.get(ENV_CACHE, "").strip()
    if env:
        return Path(env).expanduser()
    return default_store_path().parent / "cache"


def cache_key(images: np.ndarray, *, params: ScatterParams = DEFAULT_PARAMS) -> str:
    """A hash of the pixels (values, dtype, shape), the transform's parameters and kymatio's version."""
    from importlib.metadata import version

    images = np.ascontiguousarray(images)
    digest = hashlib.sha256()
    header = (
        f"scatter v{FORMAT_VERSION}; kymatio {version('kymatio')}; J={params.J}; L={params.L}; "
        f"groups={params.norm_groups}; epsilon={NORM_EPSILON!r}; {images.dtype.str}; {images.shape}"
    )
    digest.update(header.encode())
    digest.update(memoryview(images).cast("B"))
    return digest.hexdigest()


def cache_path(
    images: np.ndarray, *, name: str, params: ScatterParams = DEFAULT_PARAMS, directory: Optional[Path] = None
) -> Path:
    """The cache file for the features of ``images``, named after ``name`` (e.g. "fashion_mnist-train")."""
    folder = Path(directory) if directory is not None else cache_dir()
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[:60] or "images"
    return folder / f"{stem}-{cache_key(images, params=params)[:32]}.scatter"


def cached_features(
    images: np.ndarray, *, name: str, params: ScatterParams = DEFAULT_PARAMS, directory: Optional[Path] = None
) -> np.ndarray:
    """The features of ``images`` from the cache, or computed and stored there; a read-only array.

    A cache file that cannot be read, is truncated, or whose features do not match its checksum is
    recomputed and replaced. A cache folder that cannot be written is skipped: the features are still
    returned, and the next call computes them again.
    """
    path = cache_path(images, name=name, params=params, directory=directory)
    expected = (len(images), *feature_shape(np.shape(images)[1:], params))
    features = read_cache_file(path, shape=expected)
    if features is None:
        features = compute_features(images, params=params)
        try:
            write_cache_file(path, features)
        except OSError:
            pass  # an unwritable cache costs time, not correctness
    features.flags.writeable = False
    return features


def write_cache_file(path: Path, features: np.ndarray) -> None:
    """Write ``features`` with a checksum, atomically: readers see the old file or the whole new one."""
    features = np.ascontiguousarray(features, dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(_MAGIC)
            out.write(hashlib.sha256(memoryview(features).cast("B")).digest())
            np.lib.format.write_array(out, features, allow_pickle=False)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def read_cache_file(path: Path, *, shape: tuple[int, ...]) -> Optional[np.ndarray]:
    """The features stored at ``path`` if the file is whole, of ``shape`` and matches its checksum, else None."""
    try:
        with open(path, "rb") as handle:
            if handle.read(len(_MAGIC)) != _MAGIC:
                return None
            digest = handle.read(_DIGEST_BYTES)
            features = np.lib.format.read_array(handle, allow_pickle=False)
            if handle.read(1):
                return None  # bytes after the array: not a file this module wrote
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - any unreadable or malformed file is a cache miss, never a crash
        return None
    if features.dtype != np.float32 or features.shape != tuple(shape) or not features.flags.c_contiguous:
        return None
    if hashlib.sha256(memoryview(features).cast("B")).digest() != digest:
        return None
    return features


# -- datasets --------------------------------------------------------------------------------------


def features_dataset(
    dataset: Dataset, *, params: ScatterParams = DEFAULT_PARAMS, directory: Optional[Path] = None
) -> Dataset:
    """``dataset`` with its train, test and validation images replaced by their cached features (by default the
    standardised ones the ScatterNet models consume).

    The info's input_shape becomes the features' shape; labels are unchanged.
    """
    import dataclasses

    from dpcore.data.types import Dataset

    name = dataset.info.name
    x_train = cached_features(dataset.x_train, name=f"{name}-train", params=params, directory=directory)
    x_test = cached_features(dataset.x_test, name=f"{name}-test", params=params, directory=directory)
    info = dataclasses.replace(
        dataset.info,
        input_shape=feature_shape(dataset.info.input_shape, params),
        title=f"{dataset.info.title}, ScatterNet features",
    )
    x_validation = (
        None
        if dataset.x_validation is None
        else cached_features(dataset.x_validation, name=f"{name}-validation", params=params, directory=directory)
    )
    return Dataset(
        info=info,
        x_train=x_train,
        y_train=dataset.y_train,
        x_test=x_test,
        y_test=dataset.y_test,
        x_validation=x_validation,
        y_validation=dataset.y_validation,
    )
