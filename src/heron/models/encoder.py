"""Run a model bundle with ONNX Runtime: images and texts → L2-normalised vectors.

Each tower gets its own session, created on first use, so a search-only process never loads the
image tower and an image-only indexer never loads the text tower. Inputs are fed as each session
declares them (names, int32 vs int64, a static batch or sequence length), which lets one code path
run heron bundles (``input_ids`` + ``attention_mask``, any batch) and immich's hub exports (a
single ``text`` row of exactly 77 ids, a batch of exactly 1).

A bundle may have several text towers, each filling its own span of the vector and reading its
own languages (heron-lite 2: MiniLM for English beside multilingual-e5 for Chinese and English).
Each text goes to every tower that reads its script; the spans of towers that cannot read it stay
zero, so an English text is scored by both towers and a Chinese one by e5 alone.
"""

from __future__ import annotations

import string
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from heron.models.bundle import (
    BundleConfig,
    BundleError,
    TextClean,
    TextRole,
    TextTowerSpec,
    read_bundle,
)
from heron.models.preprocess import ImageSpec, to_pixels
from heron.util.scripts import language_of, readable

_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}
_QUOTES = str.maketrans({"‘": "'", "’": "'", "‚": "'", "‛": "'", "“": '"', "”": '"', "„": '"'})
_PUNCTUATION = str.maketrans("", "", string.punctuation)


@dataclass(frozen=True)
class _Input:
    """One declared model input: its name, dtype and any static batch / second dimension."""

    name: str
    dtype: Any
    batch: int | None
    length: int | None


def _static(dim: Any) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


class _Tower:
    """One ONNX Runtime session, created on first use (thread-safe)."""

    def __init__(self, path: Path, bundle: Path, threads: int | None) -> None:
        self.path = path
        self._bundle = bundle
        self._threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._inputs: list[_Input] = []
        self._output = ""

    @property
    def loaded(self) -> bool:
        return self._session is not None

    @property
    def inputs(self) -> list[_Input]:
        self._ensure()
        return self._inputs

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        self._ensure()
        return self._session.run([self._output], feeds)[0]

    def _ensure(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is None:
                self._open()

    def _open(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        if self._threads:
            options.intra_op_num_threads = self._threads
        options.log_severity_level = 3
        # Spinning worker threads would burn the cores that decoding threads need while an
        # indexing run overlaps the two; measured in bench/bench_index.py.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(
                self.path.as_posix(), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            problem = f"{self.path.name} cannot be loaded by ONNX Runtime: {exc}"
            raise BundleError(self._bundle, problem) from exc
        self._inputs = [self._describe(node) for node in session.get_inputs()]
        self._output = session.get_outputs()[0].name
        self._session = session

    def _describe(self, node: Any) -> _Input:
        dtype = _DTYPES.get(node.type)
        if dtype is None:
            problem = f"{self.path.name} input {node.name!r} has unsupported type {node.type}"
            raise BundleError(self._bundle, problem)
        shape = list(node.shape or [])
        batch = _static(shape[0]) if shape else None
        length = _static(shape[1]) if len(shape) > 1 else None
        return _Input(node.name, dtype, batch, length)


class Encoder:
    """A loaded bundle: `embed_images`, `embed_texts`, `embed_pixels` → unit vectors."""

    def __init__(self, config: BundleConfig, threads: int | None = None) -> None:
        self.config = config
        self._visual = _Tower(config.visual_path, config.path, threads)
        self._texts = [_TextTower(spec, config, threads) for spec in config.text_towers]

    def __repr__(self) -> str:
        return f"Encoder({self.stamp!r}, dim={self.dim}, path={str(self.config.path)!r})"

    @property
    def model_id(self) -> str:
        return self.config.model_id

    @property
    def version(self) -> str:
        return self.config.version

    @property
    def stamp(self) -> str:
        return self.config.stamp

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def languages(self) -> tuple[str, ...]:
        """Languages the text towers understand (ISO 639-1); empty when the bundle does not say."""
        return self.config.languages

    @property
    def image_spec(self) -> ImageSpec:
        return self.config.image

    @property
    def loaded(self) -> tuple[str, ...]:
        """Which towers have a live session: a subset of ("visual", "textual")."""
        loaded = ["visual"] if self._visual.loaded else []
        if any(text.session.loaded for text in self._texts):
            loaded.append("textual")
        return tuple(loaded)

    # ---- images ---------------------------------------------------------------------------------

    def embed_pixels(self, batch: np.ndarray) -> np.ndarray:
        """Preprocessed pixels [N,3,S,S] → [N,dim] float32 unit vectors."""
        pixels = np.asarray(batch, dtype=np.float32)
        size = self.image_spec.size
        if pixels.ndim != 4 or pixels.shape[1:] != (3, size, size):
            raise ValueError(f"expected pixels of shape [N,3,{size},{size}], got {pixels.shape}")
        if len(pixels) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        spec = self._visual_input()
        outputs = [
            self._visual.run({spec.name: chunk.astype(spec.dtype, copy=False)})
            for chunk in _chunks(pixels, spec.batch or len(pixels))
        ]
        return _unit_rows(_checked(np.concatenate(outputs), self.dim, "visual", self.config))

    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """PIL images → [N,dim] unit vectors, through `heron.models.preprocess.to_pixels`."""
        vectors = [np.zeros((0, self.dim), dtype=np.float32)]
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            pixels = np.stack([to_pixels(image, self.image_spec) for image in chunk])
            vectors.append(self.embed_pixels(pixels))
        return np.concatenate(vectors)

    def _visual_input(self) -> _Input:
        inputs = self._visual.inputs
        if len(inputs) != 1:
            names = [spec.name for spec in inputs]
            problem = f"the visual model must take one input (pixels), not {names}"
            raise BundleError(self.config.path, problem)
        return inputs[0]

    # ---- texts ----------------------------------------------------------------------------------

    def embed_texts(
        self, texts: Sequence[str], batch_size: int = 64, role: TextRole = "query"
    ) -> np.ndarray:
        """Texts → [N,dim] unit vectors (cleaned, prefixed, truncated to the context length).

        `role` picks the bundle's prefix: "query" for what a user searches with, "passage" for
        text that is stored (captions, OCR, document chunks).
        """
        if isinstance(texts, str):
            raise TypeError("embed_texts takes a list of strings, not one string")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for rows, tower in self._routes(texts):
            part = tower.embed([texts[row] for row in rows], role, batch_size)
            start, stop = tower.spec.span or (0, self.dim)
            vectors[np.ix_(rows, np.arange(start, stop))] += tower.spec.weight * part
        return _unit_rows(vectors)

    def _routes(self, texts: Sequence[str]) -> list[tuple[list[int], _TextTower]]:
        """(rows, tower) pairs: each text to the towers that read it; to all when none does."""
        if len(self._texts) == 1:
            return [(list(range(len(texts))), self._texts[0])]
        reads = [[readable(t, tower.spec.languages) for tower in self._texts] for t in texts]
        routes = []
        for index, tower in enumerate(self._texts):
            rows = [row for row, flags in enumerate(reads) if flags[index] or not any(flags)]
            if rows:
                routes.append((rows, tower))
        return routes

    def tokenize(self, texts: Sequence[str], role: TextRole = "query") -> dict[str, np.ndarray]:
        """The first text tower's input feed for `texts`, exactly as `embed_texts` sends it."""
        return self._texts[0].tokenize(texts, role)


class _TextTower:
    """One text tower of a bundle: its tokenizer and session, both loaded on first use."""

    def __init__(self, spec: TextTowerSpec, bundle: BundleConfig, threads: int | None) -> None:
        self.spec = spec
        self.session = _Tower(spec.path, bundle.path, threads)
        self._bundle = bundle
        start, stop = spec.span or (0, bundle.dim)
        self.dim = stop - start
        self._tokenizer: Any = None
        self._tokenizer_lock = threading.Lock()
        self._centres: dict[str, np.ndarray] | None = None

    def embed(self, texts: Sequence[str], role: TextRole, batch_size: int) -> np.ndarray:
        vectors = self._embed(texts, role, batch_size)
        if self.spec.centres is None:
            return vectors
        centres = self._load_centres()
        for row, text in enumerate(texts):
            centre = centres.get(f"{role}.{language_of(text, self.spec.languages)}")
            if centre is not None:
                vectors[row] -= centre
        return _unit_rows(vectors)

    def _load_centres(self) -> dict[str, np.ndarray]:
        if self._centres is None:
            path = self.spec.centres
            assert path is not None
            try:
                with np.load(path, allow_pickle=False) as data:
                    centres = {key: data[key].astype(np.float32) for key in data.files}
            except (OSError, ValueError) as exc:
                raise BundleError(self._bundle.path, f"{path.name} cannot be read: {exc}") from exc
            wrong = [key for key, value in centres.items() if value.shape != (self.dim,)]
            if wrong:
                problem = f"{path.name}: centres {wrong} are not of dimension {self.dim}"
                raise BundleError(self._bundle.path, problem)
            self._centres = centres
        return self._centres

    def _embed(self, texts: Sequence[str], role: TextRole, batch_size: int) -> np.ndarray:
        # Similar lengths side by side keep padding (and wasted compute) small.
        order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
        step = self._batch() or batch_size
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), step):
            indices = order[start : start + step]
            feeds = self.tokenize([texts[index] for index in indices], role)
            output = _checked(self.session.run(feeds), self.dim, "textual", self._bundle)
            vectors[indices] = _unit_rows(output)
        return vectors

    def tokenize(self, texts: Sequence[str], role: TextRole) -> dict[str, np.ndarray]:
        tokenizer = self._load_tokenizer()
        prefix = self.spec.prefix(role)
        cleaned = [prefix + clean_text(text, self.spec.clean) for text in texts]
        encodings = tokenizer.encode_batch(cleaned)
        ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
        mask = np.array([encoding.attention_mask for encoding in encodings], dtype=np.int64)
        return {
            spec.name: _text_feed(spec, ids, mask).astype(spec.dtype) for spec in self._inputs()
        }

    def _inputs(self) -> list[_Input]:
        inputs = self.session.inputs
        unknown = [spec.name for spec in inputs if _text_role(spec.name) is None]
        ids = [spec.name for spec in inputs if _text_role(spec.name) == "ids"]
        if unknown or len(ids) != 1:
            names = [spec.name for spec in inputs]
            problem = f"cannot tell which of the textual model's inputs {names} takes token ids"
            raise BundleError(self._bundle.path, problem)
        return inputs

    def _batch(self) -> int | None:
        batches = {spec.batch for spec in self._inputs()}
        return min((batch for batch in batches if batch), default=None)

    def _static_length(self) -> int | None:
        lengths = [spec.length for spec in self._inputs() if spec.length]
        return min(lengths, default=None)

    def _load_tokenizer(self) -> Any:
        if self._tokenizer is None:
            with self._tokenizer_lock:
                if self._tokenizer is None:
                    self._tokenizer = self._make_tokenizer()
        return self._tokenizer

    def _make_tokenizer(self) -> Any:
        from tokenizers import Tokenizer

        path = self.spec.tokenizer_path
        try:
            tokenizer = Tokenizer.from_file(path.as_posix())
        except Exception as exc:  # tokenizers raises a bare Exception for a bad file
            raise BundleError(self._bundle.path, f"{path.name} cannot be read: {exc}") from exc
        static = self._static_length()
        length = static or self.spec.context_length
        pad_token = tokenizer.id_to_token(self.spec.pad_id) or "[PAD]"
        tokenizer.no_truncation()
        tokenizer.enable_truncation(max_length=length)
        if static or self.spec.pad_to_context:
            tokenizer.enable_padding(pad_id=self.spec.pad_id, pad_token=pad_token, length=length)
        else:
            tokenizer.enable_padding(pad_id=self.spec.pad_id, pad_token=pad_token)
        return tokenizer


def _checked(output: np.ndarray, dim: int, tower: str, bundle: BundleConfig) -> np.ndarray:
    vectors = np.asarray(output, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        problem = f"the {tower} model gives vectors of shape {vectors.shape[1:]}, not ({dim},)"
        raise BundleError(bundle.path, problem)
    return vectors


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def load_encoder(path: Path, threads: int | None = None) -> Encoder:
    """Read the bundle at `path` (either layout); sessions open on first use."""
    return Encoder(read_bundle(Path(path)), threads=threads)


def clean_text(text: str, mode: TextClean) -> str:
    """Whitespace collapsed and curly quotes straightened, as open_clip's ftfy cleaning does;
    `canonicalize` (SigLIP) also drops punctuation and lower-cases."""
    if mode == "none":
        return text
    text = " ".join(text.translate(_QUOTES).split())
    if mode == "canonicalize":
        text = " ".join(text.replace("_", " ").translate(_PUNCTUATION).lower().split())
    return text


def _text_role(name: str) -> str | None:
    lowered = name.lower()
    if "mask" in lowered:
        return "mask"
    if "type" in lowered:
        return "types"
    if "position" in lowered:
        return None
    return "ids"


def _text_feed(spec: _Input, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    role = _text_role(spec.name)
    if role == "mask":
        return mask
    if role == "types":
        return np.zeros_like(ids)
    return ids


def _chunks(array: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(array), size):
        yield array[start : start + size]
