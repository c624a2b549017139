"""Retrain the LiT head that ships with heron-lite: Flickr8k train split, early stop on val.

Usage: python scripts/train_lite_head.py [FLICKR8K_DIR] [OUT.npz]
FLICKR8K_DIR holds captions.jsonl and images/ (default: ../shared/data/flickr8k beside the repo);
OUT defaults to the shipped src/heron/models/assets/heron-lite-head.npz. Needs the `build` extra.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from heron.models.adapter import default_head_path, train_adapter_from_jsonl

REPO = Path(__file__).resolve().parent.parent
DATA = (
    "trained on the train split of Flickr8k (6,000 images, 5 English captions each), early-stopped "
    "on its val split. Flickr8k's captions are for research use only; train a head on your own "
    "captioned images with `heron adapter train` for other uses."
)
LICENCE = "research use only (trained on Flickr8k captions)."


def main() -> None:
    data_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared/data/flickr8k"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else default_head_path()
    start = time.monotonic()
    head = train_adapter_from_jsonl(
        data_dir / "captions.jsonl",
        data_dir / "images",
        out,
        progress=lambda message: print(f"{time.monotonic() - start:7.1f}s {message}", flush=True),
        data=DATA,
        licence=LICENCE,
    )
    print({key: head.meta[key] for key in ("best_epoch", "val_recall_lit", "val_recall_blend")})


if __name__ == "__main__":
    main()
