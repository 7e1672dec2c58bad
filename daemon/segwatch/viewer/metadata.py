"""What the viewer's summaries are called and how their metadata reads: shared by the writer and the plugin.

Each epoch writes one blob sequence per shown item, `<prefix>/viewer/item/<id>`, holding
`[info.json, pred.png, gt.png or b"", image.png or b""]`, and one `<prefix>/viewer/epoch` holding
`[epoch.json]`, whose metadata carries the class names, palette and ignore colour. An empty gt or image blob
means "unchanged since step `gt_step` / `image_step` of the info", so a fixed ground truth is stored once.
"""

from __future__ import annotations

import json
from typing import Any

PLUGIN_NAME = "segwatch_viewer"
FORMAT_VERSION = 1

EPOCH_TAG = "viewer/epoch"
ITEM_TAG = "viewer/item/"

# Blob positions in an item's sequence.
INFO, PRED, GT, IMAGE = 0, 1, 2, 3
ITEM_BLOBS = 4


def epoch_tag(prefix: str) -> str:
    return f"{prefix}/{EPOCH_TAG}"


def item_tag(prefix: str, item: int) -> str:
    return f"{prefix}/{ITEM_TAG}{item}"


def encode_content(content: dict[str, Any]) -> bytes:
    return json.dumps({"version": FORMAT_VERSION, **content}, separators=(",", ":")).encode()


def decode_content(raw: bytes) -> dict[str, Any]:
    """The plugin content of a viewer summary; {} for content this version cannot read."""
    try:
        content = json.loads(raw.decode()) if raw else {}
    except (UnicodeDecodeError, ValueError):
        return {}
    if not isinstance(content, dict) or content.get("version") != FORMAT_VERSION:
        return {}
    return content
