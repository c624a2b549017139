"""Write a `heron eval` file from Flickr8k-style captions (one query per caption).

python scripts/make_flickr8k_eval.py ../shared/data/flickr8k --split val --out val_en.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from heron.util.paths import absolute


def write_eval_file(
    dataset: Path, out: Path, split: str = "val", lang: str = "en", per_image: int = 5
) -> int:
    """One line per caption: {"query": caption, "relevant": [absolute image path]}."""
    images = absolute(dataset / "images")
    count = 0
    with (
        (dataset / "captions.jsonl").open(encoding="utf-8") as source,
        out.open("w", encoding="utf-8") as sink,
    ):
        for line in source:
            record = json.loads(line)
            if record.get("split") != split:
                continue
            for caption in record[lang][:per_image]:
                query = {"query": caption.strip(), "relevant": [str(images / record["image"])]}
                sink.write(json.dumps(query, ensure_ascii=False) + "\n")
                count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="folder with captions.jsonl and images/")
    parser.add_argument("--split", default="val")
    parser.add_argument("--lang", default="en", help="caption key: en or zh")
    parser.add_argument("--per-image", type=int, default=5, help="captions used per image")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    count = write_eval_file(args.dataset, args.out, args.split, args.lang, args.per_image)
    print(f"wrote {count} queries to {args.out}")


if __name__ == "__main__":
    main()
