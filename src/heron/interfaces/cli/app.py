"""`heron` — the command line. Parses, calls `heron.library`, renders; no logic of its own."""

from __future__ import annotations

import codecs
import io
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from heron.util.paths import existing, stored_text

if TYPE_CHECKING:  # imported when a command runs: `heron --help` stays fast
    from heron import Heron, SearchHit, Unit

app = typer.Typer(
    name="heron",
    help="Index pictures by meaning and search them, offline.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="List, build and download embedding models.", no_args_is_help=True)
adapter_app = typer.Typer(
    help="Train a text↔image adapter head on your captioned images.", no_args_is_help=True
)
tag_app = typer.Typer(
    help="Tags you give files: add, remove, list; search them with tag:NAME.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")
app.add_typer(adapter_app, name="adapter")
app.add_typer(tag_app, name="tag")

out = Console()
err = Console(stderr=True, soft_wrap=True)  # a message stays one line for grep and logs

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


class _Options:
    data_dir: Path | None = None
    model: str | None = None
    threads: int | None = None


options = _Options()


def _print_version(value: bool) -> None:
    if value:
        from heron import __version__

        out.print(f"heron {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", envvar="HERON_DATA_DIR", help="Index location (default: XDG data dir)."
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", envvar="HERON_MODEL", help="Model name or bundle directory."),
    ] = None,
    threads: Annotated[
        int | None, typer.Option("--threads", help="Inference threads (default: all cores).")
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    options.data_dir, options.model, options.threads = data_dir, model, threads


def _heron():  # type: ignore[no-untyped-def]
    from heron.library import Heron

    return Heron(
        options.data_dir,
        model=options.model,
        threads=options.threads,
        on_model_progress=lambda message: err.print(f"[dim]{message}[/dim]"),
    )


@contextmanager
def _errors() -> Iterator[None]:
    """Known failures become one clear line on stderr and exit status 1."""
    from heron.errors import USER_ERRORS

    try:
        yield
    except USER_ERRORS as exc:
        err.print(f"[bold red]error:[/bold red] {_plain(exc)}", highlight=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/yellow]; committed work is kept, rerun to resume")
        raise typer.Exit(130) from None


def _plain(exc: Exception) -> str:
    """An error's message as printable text, shown as written (`[build]` is not markup)."""
    return escape(stored_text(str(exc)))


def _with_picture(heron: Heron, item: SearchHit | Unit) -> dict[str, Any]:
    """A hit or unit as JSON, with `thumbnail_path`: the file that shows it, for scripts."""
    shown = heron.thumbnail_path(item)
    return {**item.to_dict(), "thumbnail_path": stored_text(shown) if shown else None}


def _print_json(data: Any) -> None:
    """One JSON document on one line of stdout, in UTF-8 with non-ASCII text as it is.

    A lone surrogate (an undecodable byte of a file name) has no UTF-8 form: it is written as
    the `\\udcXX` escape `ensure_ascii` would write, so the line stays valid UTF-8 and JSON.
    """
    text = json.dumps(data, ensure_ascii=False, default=str)
    sys.stdout.write(text.encode("utf-8", "backslashreplace").decode("utf-8") + "\n")
    sys.stdout.flush()


def _print_table(table: Table) -> None:
    """A table on stdout. A terminal gets it fitted to its width (a long path folds between
    characters; CJK and emoji count two columns); a pipe or file gets it as wide as its widest
    row, so that every path stays whole on one line."""
    if out.is_terminal:
        out.print(table)
        return
    width = Measurement.get(out, out.options.update_width(1_000_000), table).maximum
    Console(width=width).print(table)


def _utf8(text: str, encoding: str) -> str:
    """Typed text (a query) as the UTF-8 its bytes are, whatever `encoding` decoded them with.

    Python keeps bytes its locale cannot decode as lone surrogates (in argv, and on stdin in a
    C locale); the tokenizer cannot take those. Read as UTF-8 they are the Chinese the user
    typed; bytes that are not UTF-8 either become U+FFFD.
    """
    try:
        return text.encode(encoding, "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # not bytes `encoding` could have decoded: drop the surrogates
        return text.encode("utf-8", "replace").decode("utf-8")


def _utf8_stdio() -> None:
    """Read and write UTF-8 whatever the locale says, and never fail on a character.

    Python switches to UTF-8 under a C or POSIX locale by itself (PEP 538, 540), but not with
    PYTHONUTF8=0 or a non-UTF-8 locale: then stdin would decode a Chinese query as ASCII and a
    CJK path would stop the output with a UnicodeEncodeError. Input keeps undecodable bytes as
    surrogates (as file names do); output writes a lone surrogate as a backslash escape, so
    what comes out is always valid UTF-8.
    """
    streams = ((sys.stdin, "surrogateescape"), (sys.stdout, "backslashreplace"))
    for stream, errors in (*streams, (sys.stderr, "backslashreplace")):
        if isinstance(stream, io.TextIOWrapper):
            utf8 = codecs.lookup(stream.encoding).name == "utf-8"
            stream.reconfigure(encoding=None if utf8 else "utf-8", errors=errors)


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:6.1f} files/s" if speed else "   --- files/s", style="cyan")


@app.command()
def index(
    paths: Annotated[list[Path], typer.Argument(help="Folders or files to index.")],
    include_hidden: Annotated[
        bool | None,
        typer.Option("--include-hidden/--skip-hidden", help="Index dot-files and dot-folders."),
    ] = None,
    ocr: Annotated[
        bool | None,
        typer.Option(
            "--ocr/--no-ocr",
            help="Read text in pictures (Chinese, English) for --keyword search; slower.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Index new and changed files under PATHS; prune deleted ones. Safe to rerun after a crash.

    Pictures, PDFs (pages, figures, passages), PPTX slides, DOCX, Markdown, text and HTML
    (passages and their pictures) and videos (keyframes) all go into one index.
    """
    with _errors():
        existing(paths)  # before the progress bar and the model load
    with _errors(), _heron() as heron:
        _run_indexing(
            lambda on_progress: heron.index(
                paths, on_progress=on_progress, include_hidden=include_hidden, ocr=ocr
            ),
            as_json,
        )


@app.command()
def reindex(
    model: Annotated[
        str | None,
        typer.Option("--model", help="The model to move to (default: the global --model)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Move the index to --model (default heron-lite), searchable meanwhile.

    Re-embeds every indexed file into a new index beside the live one and switches over when it
    is complete; searches keep the old index until then, and a rerun after Ctrl-C resumes.
    """
    with _errors(), _heron() as heron:
        _run_indexing(lambda on_progress: heron.reindex(on_progress, model=model), as_json)
        if not as_json:
            _line(f"[green]{escape(str(heron.data_dir))} now searches with {heron.encoder.stamp}")


def _run_indexing(run: Callable[[Any], Any], as_json: bool) -> None:
    """An indexing run with a progress bar (or JSON progress lines), then its report."""
    if as_json:
        report = run(lambda p: _print_json({"progress": p.__dict__}))
        _print_json({"report": report.to_dict()})
        return
    with _progress_bar(_RateColumn(), transient=False) as progress:
        task = progress.add_task("indexing", total=None)

        def update(p) -> None:  # type: ignore[no-untyped-def]
            progress.update(task, total=p.total, completed=p.done)

        report = run(update)
    _render_index_report(report)


def _progress_bar(*extra: ProgressColumn, transient: bool) -> Progress:
    """A bar on stderr: what is running, done/total, any `extra` columns, elapsed time, ETA."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra,
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
        transient=transient,
    )


def _render_index_report(report) -> None:  # type: ignore[no-untyped-def]
    rate = f" ({report.units_per_second:.1f} units/s)" if report.indexed else ""
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(report.units_by_kind.items()))
    kinds = f" ({kinds})" if kinds and set(report.units_by_kind) != {"image"} else ""
    _line(
        f"[green]done[/green] in {report.seconds:.1f}s{rate}: {report.indexed} embedded"
        f"{escape(kinds)} from {report.sources} files, "
        f"{report.linked} duplicates linked, {report.unchanged} unchanged, "
        f"{report.skipped} skipped, {report.removed} removed"
    )
    if report.ignored:
        kinds = ", ".join(f"{n} {suffix}" for suffix, n in report.ignored.items())
        _line(f"  [dim]ignored (no extractor reads these types): {escape(kinds)}[/dim]")
    for item in report.incomplete:
        _file_line("  partial", item["path"], item["reason"])
    for item in report.skipped_files:
        _file_line("  skipped", item["path"], item["reason"])
    for item in report.problems:
        _file_line("  problem", item["path"], item["reason"])


def _line(markup: str) -> None:
    """One report line, never wrapped: a path and its reason stay greppable in a log."""
    out.print(stored_text(markup), highlight=False, soft_wrap=True)


def _file_line(label: str, path: str, reason: str | None) -> None:
    """`label path: reason`, path and reason as they are (a folder "[draft]" is no markup)."""
    _line(f"[yellow]{label}[/yellow] {escape(path)}: {escape(str(reason))}")


@app.command()
def search(
    query: Annotated[
        str | None,
        typer.Argument(
            help='What to look for: words, "exact phrases", and filters such as kind:page '
            "width>=800 modified>=2024-05 path:~/Papers -kind:frame.",
        ),
    ] = None,
    image: Annotated[
        list[Path] | None, typer.Option("--image", "-i", help="Find images like this one.")
    ] = None,
    k: Annotated[int, typer.Option("--k", "-k", min=1, max=1000, help="Number of results.")] = 10,
    where: Annotated[
        str | None, typer.Option("--where", help="Filter, e.g. 'width>=800, format=jpeg'.")
    ] = None,
    min_score: Annotated[float | None, typer.Option(help="Drop hits below this score.")] = None,
    min_relevance: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Drop hits below this calibrated relevance (default: the min_relevance "
            "setting, 0.6); 0 shows all k.",
        ),
    ] = None,
    keyword: Annotated[
        str | None,
        typer.Option(
            "--keyword",
            help="Find this exact phrase in unit text (file names, pages, slides, passages, "
            "captions, OCR); Chinese needs no spaces.",
        ),
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind",
            help="Only these kinds of unit: image, page, figure, slide, frame, passage "
            "(repeat for several).",
        ),
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show each hit's vector and keyword ranks.")
    ] = False,
    mix: Annotated[
        str | None,
        typer.Option(
            "--mix",
            help="A mixed query: texts and pictures with weights, e.g. "
            '\'"beach" + 0.5*photo.jpg - "people"\'.',
        ),
    ] = None,
    vector_only: Annotated[
        bool, typer.Option("--vector-only", help="Rank by the vectors alone (no keyword fusion).")
    ] = False,
    rerank: Annotated[
        bool | None,
        typer.Option(
            "--rerank/--no-rerank",
            help="Re-score the best candidates with the rerank_model setting's second model "
            "(default: when one is configured).",
        ),
    ] = None,
    collapse: Annotated[
        bool,
        typer.Option(
            "--collapse/--no-collapse",
            help="Fold near-duplicates of a hit into it (default) or list every copy.",
        ),
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Search by text (vectors and keywords fused), by example image, or both; or by --keyword."""
    with _errors(), _heron() as heron:
        started = time.perf_counter()
        encoding = sys.getfilesystemencoding()
        if query is not None:
            query = _utf8(query, encoding)  # argv's bytes, as typed
        if keyword is not None:
            keyword = _utf8(keyword, encoding)
        hits, notes = _search(
            heron,
            image=image or None,
            query=query,
            fusion=not vector_only,
            mix=mix,
            keyword=keyword,
            k=k,
            filter=where,
            min_score=min_score,
            kind=kind or None,
            min_relevance=min_relevance,
            rerank=rerank,
            collapse=collapse,
        )
        took_ms = (time.perf_counter() - started) * 1000
        if as_json:
            _print_json(
                {
                    "query": query,
                    "keyword": keyword,
                    "images": [stored_text(p) for p in image or []],
                    "took_ms": round(took_ms, 1),
                    "warnings": notes,
                    "hits": [_with_picture(heron, hit) for hit in hits],
                }
            )
            return
        _print_warnings(notes)
        if not hits:
            narrowed = where is not None or min_score is not None or bool(kind)
            cut = heron.settings.min_relevance if min_relevance is None else min_relevance
            _explain_no_hits(heron, took_ms, narrowed=narrowed, cut=cut if keyword is None else 0)
            return
        _render_hits(hits, took_ms, explain)


def _search(heron, *args: Any, **kwargs: Any) -> tuple[list, list[str]]:  # type: ignore[no-untyped-def]
    """`heron.search`, with its QueryWarnings returned as messages instead of printed."""
    from heron.search.engine import QueryWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", QueryWarning)
        hits = heron.search(*args, **kwargs)
    return hits, [str(w.message) for w in caught if issubclass(w.category, QueryWarning)]


def _print_warnings(messages: list[str]) -> None:
    for message in messages:
        err.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False)


def _explain_no_hits(heron, took_ms: float, narrowed: bool, cut: float = 0.0) -> None:  # type: ignore[no-untyped-def]
    if heron.count() == 0:
        data_dir = escape(str(heron.data_dir))
        out.print(f"no results: {data_dir} holds nothing yet; run `heron index FOLDER` first")
    elif narrowed:
        out.print(f"no results ({took_ms:.0f} ms): the filter or --min-score excluded every unit")
    elif cut > 0:
        out.print(
            f"no relevant results ({took_ms:.0f} ms): nothing here scores above the relevance "
            f"cut-off {cut:g}; --min-relevance 0 shows the nearest units anyway"
        )
    else:
        out.print(f"no results ({took_ms:.0f} ms)")


def _render_hits(hits, took_ms: float, explain: bool = False) -> None:  # type: ignore[no-untyped-def]
    """A results table; the time covers encoding the query (loading the model on first use)."""
    table = Table(show_edge=False, header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("rel", justify="right")  # calibrated relevance, 0..1
    table.add_column("kind", no_wrap=True)
    table.add_column("path", overflow="fold")  # a path is only useful whole
    table.add_column("where", no_wrap=True)
    if explain:
        table.add_column("why", overflow="fold")
    for rank, hit in enumerate(hits, start=1):
        more = f" (+{len(hit.paths) - 1} copies)" if len(hit.paths) > 1 else ""
        path = Text(hit.path + more)  # Text, not markup: a path is printed as it is
        rel = getattr(hit, "relevance", None)
        relevance = "" if rel is None else f"{rel:.2f}"
        cells = [str(rank), f"{hit.score:.3f}", relevance, hit.kind, path, Text(_where(hit))]
        if explain:
            cells.append(Text(_why(getattr(hit, "explain", None))))
        table.add_row(*cells)
    _print_table(table)
    out.print(f"[dim]{len(hits)} results in {took_ms:.0f} ms[/dim]")


def _why(explain: dict[str, Any] | None) -> str:
    """`vector #3 (0.31) · keyword #1 (12.4: beach, dog)`: where a fused hit came from."""
    if not explain:
        return "vector"
    parts = []
    for name, part in explain.items():
        if name == "fused":
            continue
        terms = f": {', '.join(part['terms'])}" if part.get("terms") else ""
        parts.append(f"{name} #{part['rank']} ({part['score']:.3g}{terms})")
    return " · ".join(parts)


def _where(hit) -> str:  # type: ignore[no-untyped-def]
    """Where in its source a hit is: "page 3", "slide 12", "00:00:42.000", or its size."""
    pointer = hit.pointer
    if "timecode" in pointer:
        return str(pointer["timecode"])
    parts = []
    if "page" in pointer:
        parts.append(f"page {pointer['page']}")
    if "slide" in pointer:
        parts.append(f"slide {pointer['slide']}")
    if "chunk" in pointer:
        parts.append(f"passage {pointer['chunk'] + 1}")
    elif hit.kind == "figure":
        parts.append("figure")
    if parts:
        return ", ".join(parts)
    return f"{hit.width}×{hit.height}" if hit.width else ""


@app.command("eval")
def evaluate(
    eval_file: Annotated[Path, typer.Argument(help="JSONL: {query|query_image, relevant: [...]}")],
    fused: Annotated[
        bool,
        typer.Option(
            "--fused", help="Rank text queries as search does: vectors fused with keywords."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Measure retrieval quality on your own labelled queries (Recall@k, MRR, nDCG@10)."""
    with _errors(), _heron() as heron:
        if as_json:
            report = heron.evaluate(eval_file, fused=fused)
        else:
            with _progress_bar(transient=True) as progress:
                task = progress.add_task("loading", total=None)

                def update(p) -> None:  # type: ignore[no-untyped-def]
                    progress.update(task, description=p.stage, completed=p.done, total=p.total)

                report = heron.evaluate(eval_file, on_progress=update, fused=fused)
        data = report.to_dict()
        if as_json:
            _print_json(data)
            return
        table = Table(show_header=False, show_edge=False)
        for key, value in data.items():
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
        _print_table(table)


@app.command()
def duplicates(
    kind: Annotated[
        list[str] | None,
        typer.Option("--kind", help="Units to compare: image (default), frame, figure ..."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Files that hold the same picture: exact copies, and near-duplicates (resized,
    recompressed, cropped, padded, brightened, greyed, rotated, cut to a portrait strip,
    recoloured); burst shots are not."""
    with _errors(), _heron() as heron:
        kinds = kind or ["image"]
        if as_json:
            sets = heron.duplicates(kinds)
            _print_json([s.to_dict() for s in sets])
            return
        with _progress_bar(transient=True) as progress:
            task = progress.add_task("comparing", total=None)
            sets = heron.duplicates(
                kinds, lambda done, total: progress.update(task, completed=done, total=total)
            )
        _render_duplicates(sets)


def _render_duplicates(sets) -> None:  # type: ignore[no-untyped-def]
    if not sets:
        out.print("no duplicates")
        return
    table = Table(show_edge=False, header_style="bold")
    for name in ("set", "kind", "file", "size", "why"):
        table.add_column(name, overflow="fold" if name in ("file", "why") else "ellipsis")
    for number, found in enumerate(sets, start=1):
        for i, item in enumerate([found.keep, *found.others]):
            role = "[green]keep[/green]" if i == 0 else ""
            table.add_row(
                str(number) if i == 0 else "",
                found.kind if i == 0 else role,
                Text(item.path),
                f"{item.width}×{item.height}",
                Text(item.reason or "best copy"),
            )
    _print_table(table)
    copies = sum(len(found.others) for found in sets)
    out.print(f"[dim]{len(sets)} sets, {copies} files beside the one to keep[/dim]")


@app.command()
def stats(as_json: JsonOption = False) -> None:
    """What the index holds, and whether store and catalog agree."""
    with _errors(), _heron() as heron:
        stats_now = heron.stats()
        if as_json:
            _print_json(stats_now.to_dict())
            return
        _render_stats(stats_now)


def _render_stats(stats_now) -> None:  # type: ignore[no-untyped-def]
    files = ", ".join(f"{count} {status}" for status, count in sorted(stats_now.files.items()))
    agreement = "[green]yes[/green]" if stats_now.consistent else "[red]no — run heron index[/red]"
    table = Table(show_header=False, show_edge=False, box=None)
    table.add_row("data dir", Text(stats_now.data_dir))
    table.add_row("model", stats_now.model or "none yet")
    table.add_row("units", f"{stats_now.units} ({stats_now.rows} rows)")
    table.add_row("files", files or "none")
    table.add_row("store size", f"{stats_now.store_bytes / 1e6:.1f} MB")
    table.add_row("store and catalog agree", agreement)
    run = stats_now.last_run
    if run is not None:
        summary = ", ".join(f"{v} {k}" for k, v in run.summary.items())
        table.add_row("last run", f"#{run.id} {run.status}: {summary}")
    _print_table(table)


@app.command()
def errors(
    limit: Annotated[int | None, typer.Option(help="Show at most this many.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Files that were skipped, or indexed only in part, with the reason."""
    from heron.library import INDEXED

    with _errors(), _heron() as heron:
        records = heron.errors(limit)
        if as_json:
            _print_json([{"path": r.path, "status": r.status, "reason": r.reason} for r in records])
            return
        partial = [r for r in records if r.status == INDEXED]
        for record in records:
            label = "partial" if record.status == INDEXED else record.status
            _file_line(label, record.path, record.reason)
        summary = f"{len(records) - len(partial)} file(s) not indexed"
        out.print(summary + (f", {len(partial)} indexed in part" if partial else ""))


@app.command()
def get(unit_id: Annotated[str, typer.Argument(help="A hit's id.")]) -> None:
    """Everything stored about one unit (JSON)."""
    with _errors(), _heron() as heron:
        unit = heron.get(unit_id)
        if unit is None:
            err.print(f"[bold red]error:[/bold red] no unit with id {escape(unit_id)}")
            raise typer.Exit(1)
        _print_json(_with_picture(heron, unit))


@app.command()
def delete(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to forget.")],
) -> None:
    """Remove files (or whole folders) from the index; the files themselves are untouched."""
    with _errors(), _heron() as heron:
        removed = heron.delete(paths)
        if removed == 0:
            listed = escape(", ".join(stored_text(p) for p in paths))
            message = f"[bold red]error:[/bold red] nothing indexed under {listed}"
            err.print(message, highlight=False)
            raise typer.Exit(1)
        out.print(f"removed {removed} path(s) from the index")


TagPaths = Annotated[list[Path], typer.Argument(help="Indexed files or folders.")]


@tag_app.command("add")
def tag_add(
    tag: Annotated[str, typer.Argument(help="The tag, e.g. holiday (case does not matter).")],
    paths: TagPaths,
) -> None:
    """Give the files at or below PATHS a tag (every copy and page of them carries it)."""
    with _errors(), _heron() as heron:
        changed = heron.tag(paths, add=[tag])
        out.print(f"tagged {changed} file content(s)")


@tag_app.command("remove")
def tag_remove(
    tag: Annotated[str, typer.Argument(help="The tag to take away.")], paths: TagPaths
) -> None:
    """Take a tag away from the files at or below PATHS."""
    with _errors(), _heron() as heron:
        changed = heron.tag(paths, remove=[tag])
        out.print(f"untagged {changed} file content(s)")


@tag_app.command("list")
def tag_list(as_json: JsonOption = False) -> None:
    """Every tag in use, with how many files carry it."""
    with _errors(), _heron() as heron:
        counts = heron.tags()
        if as_json:
            _print_json(counts)
            return
        for name, count in counts.items():
            out.print(f"{escape(name)}  {count}", highlight=False)
        if not counts:
            out.print("no tags yet: heron tag add NAME PATH")


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on; beyond loopback, API keys are required.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8765,
) -> None:
    """Serve the REST API (OpenAPI at /docs) over this data dir until Ctrl-C."""
    from heron.interfaces.rest import serve as serve_api
    from heron.interfaces.rest.server import check_exposure

    with _errors(), _heron() as heron:
        settings = heron.settings
        check_exposure(host, keys_exist=heron.keys.any_active)
    out.print(f"Heron API on http://{host}:{port}/ (docs: http://{host}:{port}/docs)")
    with _errors():
        serve_api(host, port, settings=settings, log_level="warning")


@app.command()
def shell() -> None:
    """Interactive search prompt: type a query (or 'image:PATH'); empty line or Ctrl-D quits."""
    from heron.errors import USER_ERRORS

    with _errors(), _heron() as heron:
        stats_now = heron.stats()
        out.print(
            f"[bold]{stats_now.units}[/bold] images indexed with {stats_now.model}. "
            "Type a query; 'image:PATH' searches by example; empty line quits."
        )
        while True:
            try:
                line = input("heron> ").strip()
            except EOFError:
                break
            if not line:
                break
            try:
                started = time.perf_counter()
                typed = sys.stdin.encoding or "utf-8"  # UTF-8 after `_utf8_stdio`
                if line.startswith("image:"):
                    raw = line[6:].strip().encode(typed, "surrogateescape")
                    hits, notes = _search(heron, image=Path(os.fsdecode(raw)), k=10)
                else:
                    hits, notes = _search(heron, query=_utf8(line, typed), k=10)
                _print_warnings(notes)
                took_ms = (time.perf_counter() - started) * 1000
                if hits:
                    _render_hits(hits, took_ms)
                else:
                    _explain_no_hits(heron, took_ms, narrowed=False)
            except USER_ERRORS as exc:
                err.print(f"[bold red]error:[/bold red] {_plain(exc)}", highlight=False)


@models_app.command("list")
def models_list(as_json: JsonOption = False) -> None:
    """Models Heron knows: built-in, local bundles, and hub models it can download."""
    from heron.library import Heron

    infos = Heron.models()
    if as_json:
        _print_json([info.to_dict() for info in infos])
        return
    table = Table(show_edge=False, header_style="bold")
    for name in ("name", "status", "source", "description"):
        table.add_column(name)
    for info in infos:
        data = info.to_dict()
        table.add_row(
            str(data["name"]),
            str(data["status"]),
            str(data["source"]),
            str(data.get("description", "")),
        )
    _print_table(table)


@models_app.command("build")
def models_build(
    name: Annotated[
        str,
        typer.Argument(help="heron-lite (the latest, 2.0: English + Chinese) or heron-lite@1.0."),
    ] = "heron-lite",
    force: Annotated[bool, typer.Option(help="Rebuild even if present.")] = False,
    head: Annotated[
        Path | None, typer.Option(help="An adapter head from 'heron adapter train'.")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Bundle directory for a build with --head.")
    ] = None,
) -> None:
    """Build the offline model bundle from weights shipped in Python packages."""
    from heron.library import Heron

    def say(message: str) -> None:
        err.print(f"[dim]{message}[/dim]")

    with _errors():
        if head is not None:
            if out_dir is None:
                raise typer.BadParameter("--head needs --out DIR (then search with --model DIR)")
            path = Heron.build_model(head=head, out_dir=out_dir, on_progress=say)
        else:
            path = Heron.build_model(name, force=force, on_progress=say)
        out.print(f"built {name} at {path}")


@models_app.command("pull")
def models_pull(
    name: Annotated[str, typer.Argument(help="Hub repo, e.g. immich-app/ViT-B-32__openai")],
) -> None:
    """Download a CLIP-family ONNX bundle from the Hugging Face hub (honours HF_ENDPOINT)."""
    from heron.library import Heron

    with _errors():
        path = Heron.pull_model(name, on_progress=lambda m: err.print(f"[dim]{m}[/dim]"))
        out.print(f"pulled {name} to {path}")


@adapter_app.command("train")
def adapter_train(
    captions: Annotated[Path, typer.Option(help="JSONL: {image, split?, en: [captions]}")],
    images: Annotated[Path, typer.Option(help="Folder the 'image' names are relative to.")],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the head (.npz).")],
    lang: Annotated[str, typer.Option(help="Caption language key.")] = "en",
) -> None:
    """Train the LiT head that maps image features into the text space, on your own captions.

    Records with "split": "val" are held out for early stopping (else a share of the images).
    Then: heron models build --head HEAD --out DIR, and index/search with --model DIR.
    """
    from heron.library import Heron

    def say(message: str) -> None:
        err.print(f"[dim]{message}[/dim]")

    with _errors():
        Heron.train_adapter(captions, images, out_path, lang=lang, on_progress=say)
        out.print(f"trained head written to {out_path}")


# ---------------------------------------------------------------------------------- API keys

keys_app = typer.Typer(
    help="API keys for the REST API (heron serve): create, list, revoke.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")


@contextmanager
def _key_errors() -> Iterator[None]:
    from heron.catalog.keys import KeyRingError

    try:
        yield
    except KeyRingError as exc:
        err.print(f"[bold red]error:[/bold red] {_plain(exc)}", highlight=False)
        raise typer.Exit(1) from None


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at else "never"


@keys_app.command("create")
def keys_create(
    role: Annotated[
        str,
        typer.Option(
            "--role",
            help="viewer (search and read), editor (+ upload and delete) or admin (+ keys, "
            "audit, and every label).",
        ),
    ],
    label: Annotated[str, typer.Option("--label", help="Who or what the key is for.")],
    labels: Annotated[
        str,
        typer.Option(
            "--labels",
            help="ACL labels the key may see, comma-separated (finance,public); without, a "
            "viewer or editor sees only what carries no label.",
        ),
    ] = "",
    as_json: JsonOption = False,
) -> None:
    """Make a key; its secret is printed this once (only its hash is kept)."""
    from heron.catalog.keys import CLI_ADMIN

    with _errors(), _key_errors(), _heron() as heron:
        ring = heron.keys
        key_id, secret = ring.create(role, label, labels)
        ring.record(CLI_ADMIN, "admin", {"op": "create_key", "key": key_id, "role": role})
        record = ring.get(key_id)
        if as_json:
            _print_json({**(record.to_dict() if record else {"id": key_id}), "secret": secret})
            return
        out.print(f"key {key_id} ({role}, {escape(label)}) created; its secret, shown once:")
        out.print(secret, highlight=False, soft_wrap=True)


@keys_app.command("list")
def keys_list(as_json: JsonOption = False) -> None:
    """Every key (never a secret), revoked ones too."""
    with _errors(), _heron() as heron:
        records = heron.keys.list()
        if as_json:
            _print_json([record.to_dict() for record in records])
            return
        if not records:
            out.print("no API keys yet: heron keys create --role viewer --label NAME")
            return
        table = Table(show_edge=False, header_style="bold")
        for name in ("id", "role", "label", "labels", "created", "last used", "state"):
            table.add_column(name)
        for record in records:
            table.add_row(
                record.id,
                record.role,
                Text(record.label),
                Text(",".join(record.labels) or ("all" if record.role == "admin" else "none")),
                _when(record.created_at),
                _when(record.last_used_at),
                "active" if record.active else f"revoked {_when(record.revoked_at)}",
            )
        _print_table(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (heron keys list).")],
) -> None:
    """Revoke a key: the server refuses its next request."""
    from heron.catalog.keys import CLI_ADMIN

    with _errors(), _key_errors(), _heron() as heron:
        ring = heron.keys
        record = ring.revoke(key_id)
        ring.record(CLI_ADMIN, "admin", {"op": "revoke_key", "key": key_id})
        out.print(f"key {record.id} ({escape(record.label)}) revoked at {_when(record.revoked_at)}")


@app.command("audit")
def audit_log(
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many.")] = 50,
    key: Annotated[str | None, typer.Option("--key", help="Only this key's requests.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The REST API's audit log, newest first: searches with the ids they returned, opened
    items, uploads, deletions, key changes."""
    with _errors(), _heron() as heron:
        rows = heron.keys.audit(limit, key=key)
        if as_json:
            _print_json([row.to_dict() for row in rows])
            return
        table = Table(show_edge=False, header_style="bold")
        for name in ("at", "key", "action", "detail"):
            table.add_column(name, overflow="fold" if name == "detail" else "ellipsis")
        for row in rows:
            detail = json.dumps(row.detail, ensure_ascii=False, default=str)
            table.add_row(_when(row.at), row.key_id, row.action, Text(detail))
        _print_table(table)
        if not rows:
            out.print("no audit rows")


def main() -> None:
    _utf8_stdio()
    app()


if __name__ == "__main__":
    main()
