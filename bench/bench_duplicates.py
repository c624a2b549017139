"""Near-duplicate pictures: pairwise precision and recall per kind of edit, the wallpaper set,
fingerprint speed, grouping speed, and `Heron.duplicates` on indexed libraries with and
without the local-feature second look. Prints figures; asserts nothing.

Positives: N originals from Flickr8k's val split, each edited with Pillow (saved as JPEG q90,
except the q30 recompression). Negatives, per edit kind: every edited copy against every other
original, every original against every other original (similar scenes included) and edited
copies against each other. Pairs go through `matching_pairs`, i.e. the same screen and decision
as grouping.

    python bench/bench_duplicates.py [--originals 300] [--json] [--full-100k]
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from heron import Heron
from heron.search.duplicates import DuplicateSet
from heron.understand import keypoints as kp
from heron.understand import neardup as nd

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _jpeg(im: Image.Image, quality: int = 90) -> Image.Image:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out


def _crop(im: Image.Image, frac: float) -> Image.Image:
    w, h = im.size
    return im.crop((int(w * frac), int(h * frac), w - int(w * frac), h - int(h * frac)))


def _crop_asym(im: Image.Image, r: random.Random) -> Image.Image:
    w, h = im.size
    c = [r.uniform(0, 0.15) for _ in range(4)]
    return im.crop((int(w * c[0]), int(h * c[1]), w - int(w * c[2]), h - int(h * c[3])))


def _pad(im: Image.Image, frac: float, r: random.Random) -> Image.Image:
    colour = r.choice([(0, 0, 0), (255, 255, 255), (128, 128, 128), (200, 30, 30), (20, 90, 200)])
    dx, dy = int(im.width * frac), int(im.height * frac)
    return ImageOps.expand(im, border=(dx, dy, dx, dy), fill=colour)


T = Image.Transpose
EDITS = {
    "resize50": lambda im, r: im.resize((im.width // 2, im.height // 2), Image.LANCZOS),
    "resize25": lambda im, r: im.resize((im.width // 4, im.height // 4), Image.LANCZOS),
    "jpeg_q30": lambda im, r: im,
    "crop5": lambda im, r: _crop(im, 0.05),
    "crop10": lambda im, r: _crop(im, 0.10),
    "crop0-15asym": _crop_asym,
    "pad10": lambda im, r: _pad(im, 0.10, r),
    "bright+30": lambda im, r: ImageEnhance.Brightness(im).enhance(1.3),
    "bright-30": lambda im, r: ImageEnhance.Brightness(im).enhance(0.7),
    "grey": lambda im, r: im.convert("L").convert("RGB"),
    "blur2": lambda im, r: im.filter(ImageFilter.GaussianBlur(2)),
    "rot90": lambda im, r: im.transpose(T.ROTATE_90),
    "rot180": lambda im, r: im.transpose(T.ROTATE_180),
    "rot270": lambda im, r: im.transpose(T.ROTATE_270),
    "rot3": lambda im, r: im.rotate(3, resample=Image.BICUBIC),
    "rot-5": lambda im, r: im.rotate(-5, resample=Image.BICUBIC),
    "flip": lambda im, r: im.transpose(T.FLIP_LEFT_RIGHT),
    "transpose": lambda im, r: im.transpose(T.TRANSPOSE),
}


def edited(im: Image.Image, kind: str, seed: int) -> Image.Image:
    out = EDITS[kind](im, random.Random(seed))
    return _jpeg(out, 30 if kind == "jpeg_q30" else 90)


def candidate(cid: str, im: Image.Image) -> nd.Candidate:
    return nd.Candidate(cid, nd.fingerprint(im), im.width, im.height)


def per_edit(originals: list[Image.Image]) -> dict[str, dict[str, float]]:
    base = [candidate(f"o{i}", im) for i, im in enumerate(originals)]
    n = len(base)
    out: dict[str, dict[str, float]] = {}
    cross = set()
    pixels = {f"o{i}": im for i, im in enumerate(originals)}
    for kind in EDITS:
        copies = [edited(im, kind, i) for i, im in enumerate(originals)]
        pixels.update({f"e{i}": im for i, im in enumerate(copies)})
        cands = base + [candidate(f"e{i}", im) for i, im in enumerate(copies)]
        found = {(a, b) for a, b, _d, _r in nd.matching_pairs(cands)}
        # the local-feature second look, as `heron duplicates` runs it (no vectors here, so it
        # can only drop pairs: what its burst veto costs edited copies)
        look = kp.second_look(lambda c: pixels[c.id]) if kp.available() else None
        looked = {(a, b) for a, b, _d, _r in nd.matching_pairs(cands, second_look=look)}
        tp_looked = sum((f"e{i}", f"o{i}") in looked for i in range(n))
        tp = sum((f"e{i}", f"o{i}") in found for i in range(n))
        fp_edit = sum(1 for a, b in found if a[0] == "e" and b[0] == "o" and a[1:] != b[1:])
        fp_orig = {(a, b) for a, b in found if a[0] == "o" and b[0] == "o"}
        fp_ee = sum(1 for a, b in found if a[0] == "e" and b[0] == "e")
        cross |= fp_orig
        fp = fp_edit + len(fp_orig) + fp_ee
        out[kind] = {
            "pairs": n,
            "negatives": n * (n - 1) + n * (n - 1),
            "tp": tp,
            "fp": fp,
            "precision": tp / (tp + fp) if tp + fp else 1.0,
            "recall": tp / n,
            "recall_second_look": tp_looked / n,
            "fp_second_look": len(looked) - tp_looked,
        }
    total_tp = sum(v["tp"] for v in out.values())
    total_fp = sum(v["fp"] for v in out.values())
    out["overall"] = {
        "pairs": n * len(EDITS),
        "tp": total_tp,
        "fp": total_fp,
        "precision": total_tp / (total_tp + total_fp) if total_tp + total_fp else 1.0,
        "recall": total_tp / (n * len(EDITS)),
        "original_pairs_matched": sorted(cross),
    }
    return out


def neardup_set() -> dict[str, object]:
    folder = DATA / "neardup"
    groups = json.loads((folder / "groups.json").read_text(encoding="utf-8"))
    cands, group_of, variant = [], {}, {}
    for g in groups:
        for entry in g["images"]:
            with Image.open(folder / "images" / entry["file"]) as im:
                im.load()
                cands.append(candidate(entry["file"], im))
            group_of[entry["file"]] = g["group"]
            variant[entry["file"]] = entry["variant"].split(" ")[0]
    found = {(a, b): (d, r) for a, b, d, r in nd.matching_pairs(cands)}
    by_id = {c.id: c for c in cands}
    pairs = []
    for i, a in enumerate(cands):
        for b in cands[i + 1 :]:
            if group_of[a.id] != group_of[b.id]:
                continue
            key = tuple(sorted((a.id, b.id)))
            m = nd.compare(by_id[key[0]], by_id[key[1]])
            pairs.append(
                {
                    "group": group_of[a.id],
                    "a": variant[key[0]],
                    "b": variant[key[1]],
                    "found": key in found,
                    "distance": m.distance,
                    "detail": None if m.detail is None else round(m.detail, 3),
                }
            )
    false = [(a, b) for (a, b) in found if group_of[a] != group_of[b]]
    grouped = nd.group_duplicates(cands)
    return {
        "within_group_pairs": len(pairs),
        "found": sum(p["found"] for p in pairs),
        "pairs": pairs,
        "cross_group_pairs_matched": false,
        "groups": [[variant[m] + "@" + group_of[m] for m in g.members] for g in grouped],
    }


def fingerprint_speed() -> dict[str, float]:
    out = {}
    sets = {
        "flickr8k 224px": sorted((DATA / "flickr8k" / "images").glob("*.jpg"))[:200],
        "photos ~500px": sorted((DATA / "photos").rglob("*.jpg"))[:100],
        "wallpapers up to 2560px": sorted((DATA / "neardup" / "images").iterdir()),
    }
    for name, paths in sets.items():
        images = []
        for p in paths:
            with Image.open(p) as im:
                im.load()
                images.append(im.copy())
        t = time.perf_counter()
        for im in images:
            nd.fingerprint(im)
        out[name] = (time.perf_counter() - t) / len(images) * 1e3
    return out


def grouping_speed(full_100k: bool) -> dict[str, object]:
    paths = sorted((DATA / "flickr8k" / "images").glob("*.jpg"))
    cands = []
    t = time.perf_counter()
    for p in paths:
        with Image.open(p) as im:
            im.load()
            cands.append(nd.Candidate(p.name, nd.fingerprint(im), im.width, im.height))
    fp_s = time.perf_counter() - t
    t = time.perf_counter()
    groups = nd.group_duplicates(cands)
    real_s = time.perf_counter() - t
    fps = [nd.parse_fingerprint(c.fingerprint) for c in cands]
    t = time.perf_counter()
    screened = len(nd._screen(fps, nd.SCREEN_DISTANCE, None))
    screen_s = time.perf_counter() - t
    out: dict[str, object] = {
        "flickr8k_pictures": len(cands),
        "flickr8k_decode_and_fingerprint_s": round(fp_s, 2),
        "flickr8k_group_s": round(real_s, 2),
        "flickr8k_screen_s": round(screen_s, 2),
        "flickr8k_screened_pairs": screened,
        "flickr8k_groups": [g.members for g in groups],
    }
    # synthetic: real fingerprints with their hashes replaced by random bits (thumbs kept)
    rng = np.random.default_rng(0)
    n = 100_000 if full_100k else 20_000
    synth = []
    for k in range(n):
        src = fps[k % len(fps)]
        size = len(src.hashes)
        hashes = tuple(int(h) for h in rng.integers(0, 2**63, size=size, dtype=np.int64))
        synth.append(
            nd.Fingerprint(src.trimmed, src.orientation, src.ambiguous, hashes, src.thumb, src.box)
        )
    t = time.perf_counter()
    nd._screen(synth, nd.SCREEN_DISTANCE, None)
    synth_s = time.perf_counter() - t
    out[f"synthetic_{n}_screen_s"] = round(synth_s, 2)
    scale = (100_000 / n) ** 2
    out["projected_100k_screen_s"] = round(synth_s * scale, 1)
    # verification work grows with the pairs the screen passes: flickr8k's rate, scaled
    out["projected_100k_screened_pairs"] = int(screened * (100_000 / len(cands)) ** 2)
    out["verify_ms_per_pair"] = round(real_s / max(1, screened) * 1e3, 3) if screened else None
    return out


def _index(folder: Path, data_dir: Path) -> Heron:
    heron = Heron(data_dir=data_dir)
    heron.index([folder])
    return heron


def _pairs_of(sets: list[DuplicateSet]) -> set[tuple[str, str]]:
    out = set()
    for found in sets:
        names = sorted(Path(f.path).name for f in [found.keep, *found.others])
        out |= set(itertools.combinations(names, 2))
    return out


EDITED_ORIGINALS = 50  # Flickr8k val photos, each with every edit, indexed as one library


def library_sets() -> dict[str, object]:
    """`Heron.duplicates` on indexed libraries (the model's vectors, the originals), with and
    without the local-feature second look, in the same run: the wallpaper set's pairwise
    precision and recall, keyframes of the shared videos (different moments of a shot are
    similar shots; a pristine/distorted pair of one clip are copies), Flickr8k val, and a library
    of `EDITED_ORIGINALS` val photos with every edit (recall per edit through the real
    pipeline, with the model's vectors feeding the second look)."""
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = DATA / "neardup"
        groups = json.loads((folder / "groups.json").read_text(encoding="utf-8"))
        within = {
            pair
            for g in groups
            for pair in itertools.combinations(sorted(e["file"] for e in g["images"]), 2)
        }
        group_of = {e["file"]: g["group"] for g in groups for e in g["images"]}
        wallpapers = _index(folder / "images", Path(tmp) / "wallpapers")
        frames = _index(DATA / "video", Path(tmp) / "video")
        val = Path(tmp) / "val"
        val.mkdir()
        for line in (DATA / "flickr8k" / "captions.jsonl").read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record["split"] == "val":
                (val / record["image"]).symlink_to(DATA / "flickr8k" / "images" / record["image"])
        photos = _index(val, Path(tmp) / "val-data")
        edits = Path(tmp) / "edits"
        edits.mkdir()
        names = sorted(p.name for p in val.iterdir())[:EDITED_ORIGINALS]
        for n, name in enumerate(names):
            with Image.open(val / name) as image:
                original = image.convert("RGB")
            original.save(edits / f"{n:03d}-original.png")
            for kind in EDITS:
                edited(original, kind, n).save(edits / f"{n:03d}-{kind}.jpg", quality=95)
        edited_library = _index(edits, Path(tmp) / "edits-data")
        for label, local in (("hashes only", False), ("hashes + local features", True)):
            row: dict[str, object] = {}
            t = time.perf_counter()
            found = _pairs_of(wallpapers.duplicates(local_features=local))
            row["wallpapers_s"] = round(time.perf_counter() - t, 2)
            tp = len(found & within)
            row["wallpaper_pairs"] = f"{tp}/{len(within)}"
            row["wallpaper_precision"] = round(tp / len(found), 3) if found else None
            row["wallpaper_recall"] = round(tp / len(within), 3)
            row["wallpaper_cross_group"] = sorted(
                p for p in found if group_of[p[0]] != group_of[p[1]]
            )
            t = time.perf_counter()
            sets = frames.duplicates(kinds=("frame",), local_features=local)
            row["keyframe_s"] = round(time.perf_counter() - t, 2)
            row["keyframe_sets"] = [
                sorted(f"{Path(f.path).name}@{f.id[-6:]}" for f in [s.keep, *s.others])
                for s in sets
            ]
            t = time.perf_counter()
            row["flickr8k_val_pairs"] = len(_pairs_of(photos.duplicates(local_features=local)))
            row["flickr8k_val_s"] = round(time.perf_counter() - t, 2)
            t = time.perf_counter()
            found = _pairs_of(edited_library.duplicates(local_features=local))
            row["edited_s"] = round(time.perf_counter() - t, 2)
            row["edited_recall"] = {
                kind: sum(
                    (f"{n:03d}-{kind}.jpg", f"{n:03d}-original.png") in found
                    or (f"{n:03d}-original.png", f"{n:03d}-{kind}.jpg") in found
                    for n in range(len(names))
                )
                / len(names)
                for kind in EDITS
            }
            row["edited_cross_pairs"] = sum(1 for a, b in found if a[:3] != b[:3])
            out[label] = row
        for heron in (wallpapers, frames, photos, edited_library):
            heron.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--originals", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--full-100k", action="store_true", help="screen 100k, not 20k projected")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    records = [
        json.loads(line)
        for line in (DATA / "flickr8k" / "captions.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    val = sorted(r["image"] for r in records if r["split"] == "val")
    random.Random(args.seed).shuffle(val)
    originals = []
    for name in val[: args.originals]:
        with Image.open(DATA / "flickr8k" / "images" / name) as im:
            originals.append(im.convert("RGB"))
    result = {
        "originals": len(originals),
        "per_edit": per_edit(originals),
        "neardup": neardup_set(),
        "fingerprint_ms": fingerprint_speed(),
        "grouping": grouping_speed(args.full_100k),
        "libraries": library_sets(),
    }
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    print(f"per edit kind, {len(originals)} Flickr8k val originals")
    print(
        f"{'edit':14s} {'pairs':>6s} {'TP':>5s} {'FP':>4s} {'precision':>9s} {'recall':>7s}"
        f" {'recall+2nd':>10s} {'FP+2nd':>6s}"
    )
    for kind, v in result["per_edit"].items():
        second = (
            f" {v['recall_second_look']:10.3f} {v['fp_second_look']:6d}"
            if "recall_second_look" in v
            else ""
        )
        print(
            f"{kind:14s} {v['pairs']:6d} {v['tp']:5d} {v['fp']:4d} "
            f"{v['precision']:9.3f} {v['recall']:7.3f}{second}"
        )
    matched = result["per_edit"]["overall"]["original_pairs_matched"]
    print(f"original-vs-original pairs matched: {len(matched)} {matched[:10]}")
    ndset = result["neardup"]
    print(f"\nneardup set: {ndset['found']}/{ndset['within_group_pairs']} within-group pairs found")
    for p in ndset["pairs"]:
        mark = "found " if p["found"] else "missed"
        print(
            f"  {mark} {p['group']:13s} {p['a']:22s} ~ {p['b']:22s} d={p['distance']:2d} "
            f"detail={p['detail']}"
        )
    print(f"  cross-group pairs matched: {ndset['cross_group_pairs_matched']}")
    print(f"  groups: {ndset['groups']}")
    print("\nfingerprint time per picture (decoded image in hand):")
    for name, ms in result["fingerprint_ms"].items():
        print(f"  {name:26s} {ms:6.2f} ms")
    print("\ngrouping:")
    for k, v in result["grouping"].items():
        print(f"  {k}: {v}")
    print("\nindexed libraries (Heron.duplicates, same run):")
    for label, row in result["libraries"].items():
        print(f"  {label}:")
        for k, v in row.items():
            print(f"    {k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
