"""Class-id → colour tables: the built-in dataset palettes and user-supplied ones.

A palette gives every class id its own colour, and no two classes share one: a composite that paints two
classes alike would hide exactly the confusions it is meant to show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np

__all__ = [
    "BUILTIN_PALETTES",
    "CLASS_NAMES",
    "MAX_CLASSES",
    "MIN_RESERVED_DELTA_E",
    "RESERVED_ROLES",
    "build_palette",
    "delta_e",
    "reserved_colours",
    "srgb_to_lab",
    "unused_colours",
    "voc_colours",
]

# The VOC generator spreads an index's bits over the three channels, 8 bits each, so it is injective on
# 24-bit indices: that is how many distinct colours there are to hand out.
MAX_CLASSES = 1 << 24

VOC_CLASS_NAMES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip

CITYSCAPES_CLASS_NAMES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip

# Train-id order (0..18), as in the Cityscapes scripts' label table.
_CITYSCAPES_COLOURS: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)  # fmt: skip

# The 150 ADE20K (SceneParsing) classes in the order mmsegmentation trains them (its reduce_zero_label
# shifts the dataset's "other" label 0 out, so "wall" is class 0).
ADE20K_CLASS_NAMES: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence",
    "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
    "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
    "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray",
    "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator",
    "glass", "clock", "flag",
)  # fmt: skip

# mmsegmentation's ADE20K colours, one per class above. It gives "road" (6) and "skyscraper" (48) the same
# grey; _make_distinct gives the later one a fresh colour so the two stay tellable apart.
_ADE20K_COLOURS: tuple[tuple[int, int, int], ...] = (
    (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50), (4, 200, 3), (120, 120, 80),
    (140, 140, 140), (204, 5, 255), (230, 230, 230), (4, 250, 7), (224, 5, 255), (235, 255, 7),
    (150, 5, 61), (120, 120, 70), (8, 255, 51), (255, 6, 82), (143, 255, 140), (204, 255, 4),
    (255, 51, 7), (204, 70, 3), (0, 102, 200), (61, 230, 250), (255, 6, 51), (11, 102, 255),
    (255, 7, 71), (255, 9, 224), (9, 7, 230), (220, 220, 220), (255, 9, 92), (112, 9, 255),
    (8, 255, 214), (7, 255, 224), (255, 184, 6), (10, 255, 71), (255, 41, 10), (7, 255, 255),
    (224, 255, 8), (102, 8, 255), (255, 61, 6), (255, 194, 7), (255, 122, 8), (0, 255, 20),
    (255, 8, 41), (255, 5, 153), (6, 51, 255), (235, 12, 255), (160, 150, 20), (0, 163, 255),
    (140, 140, 140), (250, 10, 15), (20, 255, 0), (31, 255, 0), (255, 31, 0), (255, 224, 0),
    (153, 255, 0), (0, 0, 255), (255, 71, 0), (0, 235, 255), (0, 173, 255), (31, 0, 255),
    (11, 200, 200), (255, 82, 0), (0, 255, 245), (0, 61, 255), (0, 255, 112), (0, 255, 133),
    (255, 0, 0), (255, 163, 0), (255, 102, 0), (194, 255, 0), (0, 143, 255), (51, 255, 0),
    (0, 82, 255), (0, 255, 41), (0, 255, 173), (10, 0, 255), (173, 255, 0), (0, 255, 153),
    (255, 92, 0), (255, 0, 255), (255, 0, 245), (255, 0, 102), (255, 173, 0), (255, 0, 20),
    (255, 184, 184), (0, 31, 255), (0, 255, 61), (0, 71, 255), (255, 0, 204), (0, 255, 194),
    (0, 255, 82), (0, 10, 255), (0, 112, 255), (51, 0, 255), (0, 194, 255), (0, 122, 255),
    (0, 255, 163), (255, 153, 0), (0, 255, 10), (255, 112, 0), (143, 255, 0), (82, 0, 255),
    (163, 255, 0), (255, 235, 0), (8, 184, 170), (133, 0, 255), (0, 255, 92), (184, 0, 255),
    (255, 0, 31), (0, 184, 255), (0, 214, 255), (255, 0, 112), (92, 255, 0), (0, 224, 255),
    (112, 224, 255), (70, 184, 160), (163, 0, 255), (153, 0, 255), (71, 255, 0), (255, 0, 163),
    (255, 204, 0), (255, 0, 143), (0, 255, 235), (133, 255, 0), (255, 0, 235), (245, 0, 255),
    (255, 0, 122), (255, 245, 0), (10, 190, 212), (214, 255, 0), (0, 204, 255), (20, 0, 255),
    (255, 255, 0), (0, 153, 255), (0, 41, 255), (0, 255, 204), (41, 0, 255), (41, 255, 0),
    (173, 0, 255), (0, 245, 255), (71, 0, 255), (122, 0, 255), (0, 255, 184), (0, 92, 255),
    (184, 255, 0), (0, 133, 255), (255, 214, 0), (25, 194, 194), (102, 255, 0), (92, 0, 255),
)  # fmt: skip

BUILTIN_PALETTES: tuple[str, ...] = ("voc", "cityscapes", "ade20k")

CLASS_NAMES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"voc": VOC_CLASS_NAMES, "cityscapes": CITYSCAPES_CLASS_NAMES, "ade20k": ADE20K_CLASS_NAMES}
)


def voc_colours(indices: np.ndarray) -> np.ndarray:
    """The PASCAL VOC colour-map entries for the given indices, as an (N, 3) uint8 array.

    Index bits are dealt round-robin to R, G, B from the most significant bit down, which makes neighbouring
    ids contrast and keeps every index below MAX_CLASSES on its own colour.
    """
    codes = np.asarray(indices, dtype=np.int64).ravel()
    if codes.size and (codes.min() < 0 or codes.max() >= MAX_CLASSES):
        raise ValueError(
            f"VOC colour indices must lie in [0, {MAX_CLASSES}), got {codes.min()}..{codes.max()}"
        )
    rgb = np.zeros((codes.size, 3), dtype=np.int64)
    for bit in range(8):
        for channel in range(3):
            rgb[:, channel] |= ((codes >> channel) & 1) << (7 - bit)
        codes = codes >> 3
    return rgb.astype(np.uint8)


def _colour_keys(colours: np.ndarray) -> np.ndarray:
    """One int per colour so that sets of colours can be compared with np.isin / np.unique."""
    c = colours.astype(np.int64)
    return (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]


def unused_colours(count: int, taken: np.ndarray) -> np.ndarray:
    """The first `count` VOC colours, in generator order, that are not in `taken` (an (M, 3) uint8 array)."""
    if count == 0:
        return np.zeros((0, 3), dtype=np.uint8)
    # The generator is injective, so at most len(taken) of the first count + len(taken) candidates collide.
    candidates = voc_colours(np.arange(count + len(taken)))
    unused = ~np.isin(_colour_keys(candidates), _colour_keys(taken))
    return candidates[unused][:count]


def _make_distinct(colours: np.ndarray) -> np.ndarray:
    """Replace every repeat of an earlier colour with a fresh one, so each class keeps its own colour."""
    _, first = np.unique(_colour_keys(colours), return_index=True)
    repeats = np.setdiff1d(np.arange(len(colours)), first)
    if repeats.size == 0:
        return colours
    out = colours.copy()
    out[repeats] = unused_colours(repeats.size, colours)
    return out


def _parse_custom(spec: Sequence[Sequence[int]]) -> np.ndarray:
    if not isinstance(spec, Sequence | np.ndarray):
        raise ValueError(f"palette must be a built-in name or a list of [r, g, b] colours, got {spec!r}")
    colours = []
    for class_id, colour in enumerate(spec):
        if (
            isinstance(colour, str | bytes)
            or not isinstance(colour, Sequence | np.ndarray)
            or len(colour) != 3
        ):
            raise ValueError(f"palette colour for class {class_id} must be [r, g, b], got {colour!r}")
        for value in colour:
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 <= value <= 255:
                raise ValueError(
                    f"palette colour for class {class_id} must be three integers in [0, 255], got {colour!r}"
                )
        colours.append([int(v) for v in colour])
    if not colours:
        raise ValueError("a custom palette needs at least one [r, g, b] colour, got an empty list")
    array = np.array(colours, dtype=np.uint8)
    keys = _colour_keys(array)
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = int(first[counts > 1].min())
        again = int(np.flatnonzero(keys == keys[dup])[1])
        raise ValueError(
            f"palette colours must be distinct, got {colours[dup]} for both class {dup} and class {again}"
        )
    return array


def _builtin(name: str, num_classes: int) -> np.ndarray:
    if name == "voc":
        # VOC's colour map is its generator, defined for any number of classes.
        return voc_colours(np.arange(num_classes))
    table = _CITYSCAPES_COLOURS if name == "cityscapes" else _ADE20K_COLOURS
    return _make_distinct(np.array(table, dtype=np.uint8))


def build_palette(spec: str | Sequence[Sequence[int]], num_classes: int) -> np.ndarray:
    """A (num_classes, 3) uint8 table giving class id i the colour in row i, every row distinct.

    `spec` is a built-in name (see BUILTIN_PALETTES) or a list of [r, g, b] colours for classes 0, 1, ...
    Classes beyond what the spec defines get the first VOC colours not already in use; a spec longer than
    num_classes is cut short. Raises ValueError for an unknown name or a malformed or repeated colour.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer):
        raise ValueError(f"num_classes must be an integer, got {num_classes!r}")
    if not 1 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"num_classes must be in [1, {MAX_CLASSES}], got {num_classes}")
    num_classes = int(num_classes)
    if isinstance(spec, str):
        name = spec.strip().lower()
        if name not in BUILTIN_PALETTES:
            raise ValueError(f"unknown palette {spec!r}: expected one of {', '.join(BUILTIN_PALETTES)}")
        base = _builtin(name, num_classes)
    else:
        base = _parse_custom(spec)
    base = base[:num_classes]
    extra = unused_colours(num_classes - len(base), base)
    palette = np.concatenate([base, extra])
    return palette


# --- Reserved colours: what is not a class must never be mistaken for one -------------------------------

# CIE76 ΔE (Euclidean distance in CIELAB) that every reserved colour keeps from every class colour. About 2.3
# is "just noticeable" side by side; 20 stays clearly apart even on a picture shown at a fifth of its size.
MIN_RESERVED_DELTA_E = 20.0
# Reserved colours also keep this far from one another (pad next to gutter, text background next to either).
_MIN_MUTUAL_DELTA_E = 10.0

# The roles in slot order, each with the CIELAB lightness it would have if no class were in the way.
# ignore: white, the usual convention; pad (letterbox): dark; gutter: mid grey; backdrop (behind header and
# legend text): light, so dark text and bordered swatches of every class read on it.
RESERVED_ROLES: tuple[tuple[str, float], ...] = (
    ("ignore", 100.0),
    ("pad", 17.0),
    ("gutter", 40.0),
    ("backdrop", 93.0),
)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 sRGB → (..., 3) float64 CIELAB (D65 white)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array(
        [
            [0.4124564, 0.2126729, 0.0193339],
            [0.3575761, 0.7151522, 0.1191920],
            [0.1804375, 0.0721750, 0.9503041],
        ]
    )
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1
    )


def delta_e(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """CIE76 ΔE between every colour of `first` (N, 3) and every colour of `second` (M, 3): (N, M)."""
    a, b = srgb_to_lab(np.asarray(first).reshape(-1, 3)), srgb_to_lab(np.asarray(second).reshape(-1, 3))
    return np.asarray(np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1)))


def _candidates() -> tuple[np.ndarray, np.ndarray]:
    """Colours a reserved role may take: every grey, then a 16-level RGB grid; with their CIELAB values."""
    greys = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    levels = np.arange(0, 256, 17, dtype=np.uint8)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    colours = np.concatenate([greys, grid])
    return colours, srgb_to_lab(colours)


_CANDIDATES, _CANDIDATE_LAB = _candidates()


def reserved_colours(palette: np.ndarray) -> np.ndarray:
    """(len(RESERVED_ROLES), 3) uint8: a colour per reserved role, each at least MIN_RESERVED_DELTA_E from
    every class colour and _MIN_MUTUAL_DELTA_E from the roles before it. Among the colours that qualify, the
    nearest to the role's lightness wins, neutral before coloured; if none qualifies (hundreds of classes),
    the one farthest from every class. Deterministic for a given palette."""
    class_lab = srgb_to_lab(np.asarray(palette, dtype=np.uint8).reshape(-1, 3))
    to_classes = np.sqrt(((_CANDIDATE_LAB[:, None, :] - class_lab[None, :, :]) ** 2).sum(-1)).min(axis=1)
    chroma = np.hypot(_CANDIDATE_LAB[:, 1], _CANDIDATE_LAB[:, 2])
    chosen: list[int] = []
    for _, lightness in RESERVED_ROLES:
        if chosen:
            picked = _CANDIDATE_LAB[chosen]
            to_reserved = np.sqrt(((_CANDIDATE_LAB[:, None, :] - picked[None, :, :]) ** 2).sum(-1)).min(1)
        else:
            to_reserved = np.full(len(_CANDIDATES), np.inf)
        ok = (to_classes >= MIN_RESERVED_DELTA_E) & (to_reserved >= _MIN_MUTUAL_DELTA_E)
        if ok.any():
            cost = np.abs(_CANDIDATE_LAB[:, 0] - lightness) + 4.0 * chroma
            index = int(np.flatnonzero(ok)[np.argmin(cost[ok])])
        else:
            index = int(np.argmax(np.minimum(to_classes, to_reserved * 2)))
        chosen.append(index)
    return _CANDIDATES[chosen].copy()


def nearest_free(colour: np.ndarray, taken: np.ndarray) -> np.ndarray:
    """`colour` if no row of `taken` is it, else the perceptually nearest candidate colour that is free."""
    taken_keys = set(_colour_keys(np.asarray(taken, dtype=np.uint8).reshape(-1, 3)).tolist())
    wanted = np.asarray(colour, dtype=np.uint8).reshape(1, 3)
    if int(_colour_keys(wanted)[0]) not in taken_keys:
        return wanted[0].copy()
    free = np.array([int(k) not in taken_keys for k in _colour_keys(_CANDIDATES)])
    distance = np.sqrt(((_CANDIDATE_LAB - srgb_to_lab(wanted)) ** 2).sum(-1))
    distance[~free] = np.inf
    return _CANDIDATES[int(np.argmin(distance))].copy()


def ink_for(backdrop: np.ndarray) -> np.ndarray:
    """Text colour for a backdrop: near black on a light one, near white on a dark one."""
    lightness = float(srgb_to_lab(np.asarray(backdrop, dtype=np.uint8))[0])
    return np.array([20, 20, 20] if lightness >= 55 else [240, 240, 240], dtype=np.uint8)
