"""Calibrated relevance: a cosine score turned into "how unlikely is this for a query that has
nothing to do with this library", per model, library and query modality.

Raw cosines mean different things per model, per query modality and even per language of one
bundle (heron-lite: text→image hits score ~0.1–0.5 for English, about half of that for Chinese,
which only its e5 tower reads; image→image ~0.5–1). They also depend on the library: the best of
50 unrelated pictures scores lower than the best of 100k. So the reference is measured against
the library itself, once:

* text queries (one modality per language: `text:en`, `text:zh`): a built-in list of generic
  queries about everyday things, documents and screens (`NULL_QUERIES`) is searched, and the
  best score of each is kept. For any one library most of them are about something it does not
  hold, so their best hits are what chance gives.
* image queries (`image`): a sample of the library's own vectors is searched and each one's
  nearest *other* unit is kept (leave-one-out): what a new photo of the same kind, but not a
  copy of a stored one, scores. On Flickr8k it matches held-out photos' best scores to 0.01.

A Gumbel distribution (the law of the maximum of many similarities) is fitted to these
null best scores from their lower quartile and median only, so the null queries that do match
something in the library (a "guitar" query on a photo library holding guitarists) cannot pull the
fit up. `relevance(score)` is its CDF: the probability that a null query's best hit scores below
`score`. It is in [0, 1], strictly increasing in the score, and 0.5 at the null median.

No per-query statistics: on Flickr8k the gap between a query's target and the rest of its
top-N separated found targets from held-out queries' best hits worse than chance (AUC 0.2–0.4),
so only the score itself, against the library's null, is used.

Cost (2 cores, heron-lite, 500 units, measured by scripts/eval_cutoff.py): 0.45 s with the text
towers loaded, 1.5 s when calibrating loads them; 136 null texts and 64 sample vectors searched,
so at 7k units `search_many` adds ~0.1 s (0.9 ms per query, heron.store.lance).
Recompute when the model changes or the unit count moved by more than `RECOMPUTE_RATIO`
(`Calibration.stale`): the null's location rises ~0.07 per tenfold growth of the library.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np

from heron.util.scripts import language_of

__all__ = [
    "CALIBRATION_VERSION",
    "DEFAULT_MIN_RELEVANCE",
    "IMAGE",
    "IMAGE_SAMPLE",
    "NULL_QUERIES",
    "RECOMPUTE_RATIO",
    "Calibration",
    "calibrate",
    "calibrate_all",
    "modality_of",
]

CALIBRATION_VERSION = 1
IMAGE = "image"
# The default cut-off (the `min_relevance` setting): a hit must score above what 60 % of unrelated
# queries' best hits reach. Measured by scripts/eval_cutoff.py (500 Flickr8k val photos held in,
# 500 held out): at 0.6, off-topic queries answer 0.05 (EN) / 0.30 (ZH) of the time against 1.0
# uncut, 0.52 (EN) / 0.65 (ZH) of the targets the model ranks in its top 10 stay, and 0.96 of
# recompressed copies find their original. 0.7 halves the Chinese off-topic share (0.15) but
# keeps only 0.37 of the English targets; 0.5 keeps 0.65 but answers 0.20 / 0.35 off-topic.
DEFAULT_MIN_RELEVANCE = 0.6
RECOMPUTE_RATIO = 1.2  # recompute when the unit count grew or shrank by more than this factor
IMAGE_SAMPLE = 64  # library vectors searched leave-one-out for the image null
MIN_NULLS = 8  # fewer null best scores than this give no calibration
DUPLICATE = 0.995  # a leave-one-out neighbour this close is the unit itself (or a copy of it)

# Generic queries about things a given library is unlikely to hold: everyday objects, food,
# places, documents, screens and charts, so that a photo library and a document library each
# find most of them unrelated. English and Chinese are separate lists (not translations needed).
NULL_QUERIES: Mapping[str, tuple[str, ...]] = {
    "en": (
        "quarterly tax spreadsheet formulas", "a bowl of ramen noodles", "the engine of a car",
        "a violin on a table", "a chemistry lab with test tubes", "an airport departure board",
        "a stack of pancakes with syrup", "a server rack in a data centre",
        "a close-up of a keyboard", "a map of the subway", "a wedding cake",
        "a microscope slide of cells", "a pile of coins", "a bar chart of sales figures",
        "an invoice with a total amount", "a cup of coffee and a laptop",
        "a bookshelf full of books", "a hospital operating room", "a tractor in a wheat field",
        "a sushi platter", "a cat sleeping on a sofa", "a lighthouse at night",
        "a construction crane", "a pizza in a box", "a screenshot of a settings menu",
        "a handwritten letter", "a chessboard", "a plate of fried rice",
        "a kitchen sink with dishes", "an electric guitar", "a traffic jam on a highway",
        "a jar of honey", "a medical x-ray", "a receipt from a supermarket", "a wind turbine",
        "a vintage typewriter", "the periodic table of elements", "a pair of running shoes",
        "a bouquet of roses", "a satellite image of a city", "a toolbox with wrenches",
        "a diagram of a neural network", "a cruise ship in a harbour", "a baby in a crib",
        "a volcano erupting", "a bank statement", "a cow in a barn", "a video game controller",
        "an empty classroom", "a glass of red wine", "a power plug and cables",
        "a row of solar panels", "a slice of watermelon", "a police car",
        "a shopping mall interior", "a bicycle repair shop", "a calendar page for march",
        "a tropical fish in an aquarium", "a snowman", "a passport and boarding pass",
        "a pot of soup on a stove", "a museum painting gallery", "a smartphone on a desk",
        "a parking garage", "a bridge over a river at night", "a basket of fruit",
        "a train station platform", "a lecture slide with bullet points",
    ),
    "zh": (
        "季度税务报表公式", "一碗拉面", "汽车发动机", "桌上的小提琴", "化学实验室里的试管",
        "机场航班信息屏", "一叠淋了糖浆的松饼", "数据中心的服务器机柜", "键盘特写", "地铁线路图",
        "婚礼蛋糕", "显微镜下的细胞", "一堆硬币", "销售额柱状图", "写有总金额的发票",
        "一杯咖啡和笔记本电脑", "摆满书的书架", "医院手术室", "麦田里的拖拉机", "寿司拼盘",
        "睡在沙发上的猫", "夜晚的灯塔", "建筑工地的塔吊", "盒子里的披萨", "设置菜单的截图",
        "手写的信", "国际象棋棋盘", "一盘炒饭", "堆着碗碟的厨房水槽", "电吉他",
        "高速公路上的堵车", "一罐蜂蜜", "医学X光片", "超市购物小票", "风力发电机",
        "老式打字机", "元素周期表", "一双跑鞋", "一束玫瑰花", "城市的卫星图像",
        "装着扳手的工具箱", "神经网络结构图", "港口里的游轮", "婴儿床里的婴儿", "火山喷发",
        "银行对账单", "牛棚里的奶牛", "游戏手柄", "空荡荡的教室", "一杯红酒",
        "电源插头和电线", "一排太阳能电池板", "一片西瓜", "警车", "商场内部",
        "自行车修理店", "三月的日历", "水族箱里的热带鱼", "雪人", "护照和登机牌",
        "炉子上的一锅汤", "博物馆画廊", "桌上的智能手机", "地下停车场", "夜晚河上的桥",
        "一篮水果", "火车站站台", "带项目符号的课件幻灯片",
    ),
}  # fmt: skip

# Gumbel quantile factors -ln(-ln p): the fit reads the null's lower quartile and median.
_G25 = -math.log(-math.log(0.25))
_G50 = -math.log(-math.log(0.5))
_MIN_SCALE = 1e-3

SearchMany = Callable[[np.ndarray, int], list[list[float]]]


class _TextEncoder(Protocol):
    def embed_texts(self, texts: list[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class Calibration:
    """The null of one (model, modality) on one library, and the relevance it implies."""

    model: str  # the encoder's stamp, e.g. "heron-lite@2.0"
    modality: str  # "text:en", "text:zh" ... or "image"
    units: int  # units in the library when calibrated
    location: float  # Gumbel location of the null best scores
    scale: float  # Gumbel scale (> 0)
    samples: int  # null best scores the fit saw
    median: float  # their median and 90th percentile, as measured (for reports)
    p90: float
    version: int = CALIBRATION_VERSION

    def relevance(self, score: float | np.ndarray) -> float | np.ndarray:
        """P(an unrelated query's best hit scores below `score`), in [0, 1]; arrays elementwise."""
        z = (np.asarray(score, dtype=np.float64) - self.location) / self.scale
        value = np.exp(-np.exp(-np.clip(z, -30.0, 700.0)))
        return float(value) if np.ndim(value) == 0 else value

    def min_score(self, min_relevance: float) -> float:
        """The cosine a hit needs for `relevance >= min_relevance` (-inf at 0, +inf at 1): what
        the engine can pass on as its `min_score`."""
        if not 0.0 <= min_relevance <= 1.0:
            raise ValueError(f"min_relevance must be in [0, 1], got {min_relevance}")
        if min_relevance <= 0.0:
            return -math.inf
        if min_relevance >= 1.0:
            return math.inf
        return self.location - self.scale * math.log(-math.log(min_relevance))

    def stale(self, units: int, model: str) -> bool:
        """Whether to recompute: another model, or the library grew/shrank by > RECOMPUTE_RATIO."""
        if model != self.model or units <= 0:
            return True
        ratio = units / max(self.units, 1)
        return ratio > RECOMPUTE_RATIO or ratio < 1.0 / RECOMPUTE_RATIO

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        """Raises ValueError on anything but a calibration of this CALIBRATION_VERSION."""
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a calibration: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("not a calibration: expected a JSON object")
        if data.get("version") != CALIBRATION_VERSION:
            raise ValueError(
                f"calibration version {data.get('version')!r}, expected {CALIBRATION_VERSION}"
            )
        try:
            calibration = cls(
                model=_typed(data, "model", str),
                modality=_typed(data, "modality", str),
                units=_typed(data, "units", int),
                location=float(_typed(data, "location", (int, float))),
                scale=float(_typed(data, "scale", (int, float))),
                samples=_typed(data, "samples", int),
                median=float(_typed(data, "median", (int, float))),
                p90=float(_typed(data, "p90", (int, float))),
            )
        except KeyError as exc:
            raise ValueError(f"not a calibration: {exc.args[0]} is missing") from None
        if set(data) != set(asdict(calibration)):
            raise ValueError(f"not a calibration: unexpected keys {sorted(data)}")
        finite = all(math.isfinite(v) for v in (calibration.location, calibration.scale))
        if not finite or calibration.scale <= 0 or calibration.units < 0:
            raise ValueError("not a calibration: location/scale/units out of range")
        return calibration


def _typed(data: dict, key: str, kind: type | tuple[type, ...]) -> object:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"not a calibration: {key} is {value!r}")
    return value


def modality_of(text: str | None, images: int, languages: Sequence[str]) -> str | None:
    """The calibration a query uses: `image` for pictures alone, `text:<lang>` for a text alone
    (its language among the model's, English when it has no list of its own); None for a text
    with pictures (their averaged vector is calibrated by neither: show it uncut)."""
    if text is not None and images:
        return None
    if text is None:
        return IMAGE if images else None
    language = language_of(text, tuple(languages) or ("en",))
    return f"text:{language if language in NULL_QUERIES else 'en'}"


def calibrate(
    encoder: _TextEncoder,
    search_many: SearchMany,
    units: int,
    model: str,
    modality: str,
    library_sample: np.ndarray | None = None,
) -> Calibration:
    """Measure the null of `modality` on this library.

    `search_many(vectors [N, dim], k)` gives each query's top-k cosine scores, best first, over
    the library's units; `units` is how many it holds. Text modalities embed `NULL_QUERIES`;
    `image` searches `library_sample` ([M, dim] stored vectors, a random sample of the units that
    have pixels; ~IMAGE_SAMPLE rows are enough) leave-one-out. Raises ValueError when the library
    is too small to calibrate (then show everything).
    """
    if modality == IMAGE:
        if library_sample is None or len(library_sample) == 0:
            raise ValueError("the image calibration needs a sample of the library's vectors")
        sample = np.asarray(library_sample, dtype=np.float32)[:IMAGE_SAMPLE]
        best = [_other(scores) for scores in search_many(sample, min(units, 3))]
        nulls = [score for score in best if score is not None]
    elif modality.startswith("text:") and modality[5:] in NULL_QUERIES:
        vectors = encoder.embed_texts(list(NULL_QUERIES[modality[5:]]))
        nulls = [scores[0] for scores in search_many(vectors, 1) if scores]
    else:
        raise ValueError(f"no calibration for modality {modality!r}")
    if len(nulls) < MIN_NULLS:
        raise ValueError(f"{len(nulls)} null scores on {units} units: too few to calibrate")
    values = np.asarray(nulls, dtype=np.float64)
    q25, q50, q90 = (float(q) for q in np.percentile(values, [25, 50, 90]))
    scale = max((q50 - q25) / (_G50 - _G25), _MIN_SCALE)
    return Calibration(
        model=model,
        modality=modality,
        units=units,
        location=q50 - scale * _G50,
        scale=scale,
        samples=len(values),
        median=q50,
        p90=q90,
    )


def calibrate_all(
    encoder: _TextEncoder,
    search_many: SearchMany,
    units: int,
    model: str,
    library_sample: np.ndarray | None = None,
) -> dict[str, Calibration]:
    """Every modality that can be calibrated here: each text language, and `image` when a
    sample of picture vectors is given (a library too small for one is left out)."""
    wanted = [f"text:{language}" for language in NULL_QUERIES]
    if library_sample is not None and len(library_sample):
        wanted.append(IMAGE)
    result = {}
    for modality in wanted:
        try:
            result[modality] = calibrate(
                encoder, search_many, units, model, modality, library_sample
            )
        except ValueError:
            continue
    return result


def _other(scores: list[float]) -> float | None:
    """The best score of a stored vector's search that is not the vector itself (or a copy)."""
    for score in scores:
        if score < DUPLICATE:
            return float(score)
    return None
