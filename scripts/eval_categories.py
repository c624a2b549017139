"""Accuracy of the zero-shot categories on a labelled set built from ../shared/data.

    python scripts/eval_categories.py [--data ../shared/data]

Labels come from what the material is, not from the model: Flickr8k val photos whose five
captions all mention an animal (dog, cat, horse, bird, cow, sheep) are `animal`; those whose
captions mention no animal but a person are `people` or `portrait` (either counts); the
wallpapers in neardup/ are `landscape` (mountains, sea, sky, forests); PDF figures of the
Debian manual are `screenshot`; the rendered pages of the PDFs are `document`. Prints accuracy
per label and overall, and the confusion of the wrong ones.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

from PIL import Image

from heron.extract.base import ExtractOptions, Source
from heron.extract.pdf import extractor as pdf_extractor
from heron.models import registry
from heron.models.encoder import load_encoder
from heron.understand.categories import Categoriser

REPO = Path(__file__).resolve().parents[1]
ANIMAL = re.compile(r"\b(dogs?|cats?|horses?|birds?|cows?|sheep|puppy|puppies)\b")
PERSON = re.compile(r"\b(man|woman|men|women|boy|girl|child|children|people|person|kid)s?\b")


def labelled(data: Path) -> list[tuple[Image.Image, set[str]]]:
    items: list[tuple[Image.Image, set[str]]] = []
    flickr = data / "flickr8k"
    for line in (flickr / "captions.jsonl").open(encoding="utf-8"):
        record = json.loads(line)
        if record["split"] != "val":
            continue
        captions = [c.lower() for c in record["en"]]
        if all(ANIMAL.search(c) for c in captions):
            label = {"animal"}
        elif not any(map(ANIMAL.search, captions)) and all(map(PERSON.search, captions)):
            label = {"people", "portrait"}
        else:
            continue
        items.append((Image.open(flickr / "images" / record["image"]).convert("RGB"), label))
    for path in sorted((data / "neardup").rglob("*.jpg"))[:20]:
        image = Image.open(path).convert("RGB")
        image.thumbnail((512, 512))
        items.append((image, {"landscape"}))
    manual = Source.from_path(data / "docs" / "pdf" / "debian-edu-bookworm-manual.pdf")
    for draft in pdf_extractor.extract(manual, ExtractOptions()):
        if draft.kind == "figure" and draft.image is not None:
            items.append((draft.image, {"screenshot"}))
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    encoder = load_encoder(registry.resolve("heron-lite"))
    categoriser = Categoriser(encoder)
    items = labelled(args.data)
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    wrong: Counter[tuple[str, str]] = Counter()
    for start in range(0, len(items), 64):
        chunk = items[start : start + 64]
        vectors = encoder.embed_images([image for image, _ in chunk])
        for (_, labels), (found, _) in zip(chunk, categoriser.classify(vectors), strict=True):
            key = "/".join(sorted(labels))
            total[key] += 1
            if found in labels:
                right[key] += 1
            else:
                wrong[(key, found)] += 1
    for key in sorted(total):
        print(f"{key:16s} {right[key] / total[key]:.3f} of {total[key]}")
    overall = sum(right.values()) / sum(total.values())
    print(f"overall          {overall:.3f} of {sum(total.values())}")
    confusions = ", ".join(f"{a}→{b} {n}" for (a, b), n in wrong.most_common(6))
    print("most common confusions:", confusions)


if __name__ == "__main__":
    main()
