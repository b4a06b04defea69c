"""``ragloop ingest``: load, chunk, embed and store documents from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ragloop.cli.common import (
    EXIT_PARTIAL,
    DataDir,
    JsonFlag,
    app,
    emit_json,
    err,
    handled,
    out,
    progress_bar,
    progress_callback,
    settings_for,
)

# Up to this many entries the report does not take (links to other hosts...) are printed.
_SHOWN_SKIPPED = 10


_WEB_FLAGS = ("--depth", "--max-pages", "--delay", "--allow-host", "--max-page-mb")


@app.command()
def ingest(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Files or directories, or http(s) URLs of pages or sitemaps to crawl.",
            metavar="PATH_OR_URL...",
            show_default=False,
        ),
    ] = None,
    include: Annotated[
        list[str] | None,
        typer.Option("--include", help="Glob of files to take (repeatable; files and --git)."),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", help="Glob of files to skip (repeatable; files and --git)."),
    ] = None,
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Remove documents whose files, pages or Git files are gone."),
    ] = False,
    follow_outside_links: Annotated[
        bool,
        typer.Option(
            "--follow-outside-links",
            help="Also ingest files that links in a folder point to outside that folder.",
        ),
    ] = False,
    git: Annotated[
        str | None,
        typer.Option("--git", help="Ingest the files of a Git repository (a path or clone URL)."),
    ] = None,
    ref: Annotated[
        str | None, typer.Option("--ref", help="Branch, tag or commit of --git (default HEAD).")
    ] = None,
    depth: Annotated[
        int | None,
        typer.Option("--depth", help="Link hops followed from a start URL (default 3).", min=0),
    ] = None,
    max_pages: Annotated[
        int | None,
        typer.Option("--max-pages", help="Most pages requested in one crawl (default 500).", min=1),
    ] = None,
    delay: Annotated[
        float | None,
        typer.Option("--delay", help="Seconds between requests to one host (default 1).", min=0),
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option("--allow-host", help="Another host the crawl may follow links to."),
    ] = None,
    max_page_mb: Annotated[
        float | None,
        typer.Option(
            "--max-page-mb", help="Largest page read, in MiB (default RAGLOOP_MAX_FILE_MB)."
        ),
    ] = None,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Load, chunk, embed and store documents; unchanged documents cost nothing.

    PATHs are files and folders, or http(s) URLs of pages (same-host links are followed) and
    sitemaps; --git ingests a repository's files instead.
    """
    from ragloop.core.errors import InvalidInputError
    from ragloop.core.runtime import open_runtime
    from ragloop.core.storage.locks import WriterLock
    from ragloop.ingest.git_source import GitSource
    from ragloop.ingest.pipeline import DocumentSource, Ingestor, IngestReport, load_options
    from ragloop.ingest.web import CrawlOptions, WebSource, is_url

    web_flags = [
        flag
        for flag, value in zip(
            _WEB_FLAGS, (depth, max_pages, delay, allow_host, max_page_mb), strict=True
        )
        if value is not None
    ]
    with handled():
        given = paths or []
        urls = [p for p in given if is_url(p)]
        if git is not None and given:
            raise InvalidInputError("--git takes no PATH arguments")
        if git is None and not given:
            raise InvalidInputError("give files, folders or URLs to ingest, or --git REPOSITORY")
        if urls and len(urls) != len(given):
            raise InvalidInputError("give either files and folders or URLs in one run, not both")
        if ref is not None and git is None:
            raise InvalidInputError("--ref applies to --git only")
        if web_flags and not urls:
            raise InvalidInputError(f"{', '.join(web_flags)} apply to URLs only")
        if urls and (include or exclude or follow_outside_links):
            raise InvalidInputError(
                "--include, --exclude and --follow-outside-links apply to files and --git"
            )
        if git is not None and follow_outside_links:
            raise InvalidInputError("--follow-outside-links applies to files only")
        settings = settings_for(data_dir)
        source: DocumentSource | None = None
        if git is not None:
            source = GitSource(
                git,
                ref,
                include or (),
                exclude or (),
                settings.max_file_bytes,
                options=load_options(settings),
            )
        elif urls:
            page_mb = settings.max_file_mb if max_page_mb is None else max_page_mb
            defaults = CrawlOptions()
            options = CrawlOptions(
                max_depth=defaults.max_depth if depth is None else depth,
                max_pages=defaults.max_pages if max_pages is None else max_pages,
                delay_s=defaults.delay_s if delay is None else delay,
                max_page_bytes=int(page_mb * 2**20),
                allow_hosts=tuple(allow_host or ()),
            )
            source = WebSource(urls, options)
        with WriterLock(settings.data_dir, "ragloop ingest"):
            rt = open_runtime(settings)
            try:
                with progress_bar() as bar:
                    ingestor = Ingestor(rt, progress_callback(bar))
                    report: IngestReport
                    if source is not None:
                        report = ingestor.ingest_source(source, prune)
                    else:
                        report = ingestor.ingest(
                            [Path(p) for p in given],
                            include or (),
                            exclude or (),
                            prune,
                            follow_outside_links=follow_outside_links,
                        )
            finally:
                rt.close()
    if as_json:
        emit_json(report.to_dict())
    else:
        for f in report.failed:
            err.print(f"[yellow]skipped[/yellow] {f['name']}: {f['reason']}", highlight=False)
        for w in report.warnings:
            err.print(f"[yellow]warning[/yellow] {w['name']}: {w['warning']}", highlight=False)
        if len(report.skipped) <= _SHOWN_SKIPPED:
            for s in report.skipped:
                err.print(f"not taken {s['name']}: {s['reason']}", highlight=False)
        else:
            err.print(f"not taken: {len(report.skipped)} (--json lists them)", highlight=False)
        out.print(
            f"documents: {report.added} added, {report.updated} updated, "
            f"{report.unchanged} unchanged, {report.removed} removed, "
            f"{len(report.failed)} failed\n"
            f"chunks embedded: {report.chunks_embedded} in {report.seconds:.1f} s "
            f"({report.chunks_per_second:.1f} chunks/s), model {report.model_version}",
            highlight=False,
        )
    if report.failed:
        raise typer.Exit(EXIT_PARTIAL)
