"""Build an FAQ-style BEIR evaluation set from FAQs that Debian packages install.

Each FAQ entry's heading (a question such as "How do I ...?", or for fetchmail also a symptom
such as "Fetchmail hangs while fetching mail.") becomes a query, and the entry's answer becomes
its one relevant document. The heading is removed from the document and is not its title: the
title is only the FAQ's name and the entry's number, so a query can only match through what the
answer says. That makes questions paraphrase their answers, unlike SciFact (claims vs
abstracts), Financial QA (LLM questions copied from a passage) and SQuAD (reading comprehension).

Sources (Debian 12 "bookworm"; versions are recorded in ``manifest.json``):

- ``zsh``: the Z-Shell FAQ, ``/usr/share/doc/zsh-common/FAQ.gz`` (package ``zsh-common``),
  plain text; only headings that are questions are kept (e.g. not "Sources of information").
- ``fetchmail``: the Fetchmail FAQ, ``/usr/share/doc/fetchmail/fetchmail-FAQ.html`` (package
  ``fetchmail``), XHTML; every entry is kept, because its non-question headings are the
  symptoms users search with.
- ``git``: gitfaq(7), ``/usr/share/doc/git-doc/gitfaq.txt`` (package ``git-doc``), AsciiDoc;
  every entry is kept, as for fetchmail.

Answers shorter than ``--min-words`` (default 30) are dropped. The output is deterministic:
the same installed files give byte-identical files.

Usage (``benchmarks/data/`` is git-ignored)::

    python -m benchmarks.faq_corpus --out benchmarks/data/faq-tools
    python -m benchmarks.retrieval_modes --dataset benchmarks/data/faq-tools --by-source
    ragloop ingest benchmarks/data/faq-tools/corpus.jsonl --data-dir /tmp/faq-data
    ragloop eval --dataset benchmarks/data/faq-tools --mode service \\
        --retrieval dense,lexical,hybrid --data-dir /tmp/faq-data
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "faq-tools"
DEFAULT_MIN_WORDS = 30


@dataclass(frozen=True)
class Entry:
    """One FAQ entry: its number, the heading (the future query) and the answer paragraphs."""

    source: str
    section: str
    question: str
    paragraphs: tuple[str, ...]

    @property
    def answer(self) -> str:
        """The answer as plain text, paragraphs separated by a blank line."""
        return "\n\n".join(self.paragraphs)

    @property
    def words(self) -> int:
        """Whitespace-separated words in the answer (the length filter's unit)."""
        return len(self.answer.split())


@dataclass(frozen=True)
class Source:
    """An FAQ a Debian package installs, and how to read it."""

    name: str
    title: str
    package: str
    path: Path
    parse: Callable[[Path], list[Entry]]
    #: Keep only headings with a question mark: the zsh FAQ mixes in topic titles ("Sources
    #: of information"), whereas the others' statements are symptoms users search with.
    questions_only: bool = False
    notes: str = ""


@dataclass
class Build:
    """What a build kept and dropped, for the manifest and the summary line."""

    entries: list[Entry] = field(default_factory=list)
    dropped_short: list[str] = field(default_factory=list)
    dropped_not_question: list[str] = field(default_factory=list)


# --- text helpers -------------------------------------------------------------------------

_SPACE = re.compile(r"\s+")
# Rulers ("-----", "=====") frame tables in the zsh FAQ; they carry no words.
_RULER = re.compile(r"^\s*[-=_*]{4,}\s*$")


def squash(text: str) -> str:
    """Collapse all runs of whitespace (line wraps included) to one space."""
    return _SPACE.sub(" ", text).strip()


def paragraphs_of(lines: Iterable[str]) -> tuple[str, ...]:
    """Split wrapped lines into paragraphs at blank lines, each squashed to one line.

    Code samples lose their layout; retrieval models and BM25 only see tokens anyway.
    """
    out: list[str] = []
    block: list[str] = []
    for line in [*lines, ""]:
        if not line.strip() or _RULER.match(line):
            if block:
                out.append(squash(" ".join(block)))
                block = []
            continue
        block.append(line)
    return tuple(p for p in out if p)


def clean_question(heading: str) -> str:
    """A heading as a user would type it: no number, no trailing "(Plus ...)" aside."""
    text = squash(heading)
    # "Why do my csh aliases not work?  (Plus other alias pitfalls.)": the aside names extra
    # topics of the answer, not part of the question.
    text = re.sub(r"\s*\([^()]*\)\s*$", "", text) if "?" in text else text
    return text.strip()


# --- zsh: plain-text FAQ ------------------------------------------------------------------

# Body headings are "3.4: How do I ...?" at column 0 (the contents list uses "3.4." instead).
_ZSH_HEADING = re.compile(r"^(\d+\.\d+): (\S.*)$")
_ZSH_END = re.compile(r"^(Chapter \d+: |Acknowledgments:|Copyright Information:)")


def parse_zsh(path: Path) -> list[Entry]:
    """Entries of the Z-Shell FAQ's plain-text edition (gzip-compressed as Debian ships it)."""
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
        lines = fh.read().splitlines()
    entries: list[Entry] = []
    current: tuple[str, str] | None = None
    body: list[str] = []

    def flush() -> None:
        if current is not None:
            entries.append(Entry("zsh", current[0], current[1], paragraphs_of(body)))

    for line in lines:
        head = _ZSH_HEADING.match(line)
        if head:
            flush()
            current, body = (head.group(1), head.group(2)), []
        elif _ZSH_END.match(line):
            flush()
            current, body = None, []
        elif current is not None:
            body.append(line)
    flush()
    return entries


# --- fetchmail: XHTML FAQ -----------------------------------------------------------------

_FM_LABEL = re.compile(r"^([A-Z]\d+)\.\s+(.*)$", re.S)


def parse_fetchmail(path: Path) -> list[Entry]:
    """Entries of the Fetchmail FAQ: every ``<h2>`` holding a named anchor, answered by the
    elements up to the next ``<h1>``, ``<h2>`` or ``<hr>``."""
    from bs4 import BeautifulSoup, NavigableString, Tag

    raw = path.read_bytes()
    # The file declares ISO-8859-1; honour the declaration rather than guess.
    declared = re.search(rb'encoding="([^"]+)"', raw[:200])
    encoding = declared.group(1).decode("ascii") if declared else "utf-8"
    soup = BeautifulSoup(raw, "html.parser", from_encoding=encoding)
    entries: list[Entry] = []
    for h2 in soup.find_all("h2"):
        anchor = h2.find("a", attrs={"name": True})
        if anchor is None:  # the contents' chapter headings have ids but no anchor
            continue
        label = _FM_LABEL.match(squash(h2.get_text(" ")))
        if label is None:
            continue
        paras: list[str] = []
        for node in h2.next_siblings:
            if isinstance(node, Tag) and node.name in ("h1", "h2", "hr"):
                break
            if isinstance(node, NavigableString):
                text = squash(str(node))
            elif isinstance(node, Tag):
                for br in node.find_all("br"):
                    br.replace_with(" ")
                text = squash(node.get_text(" "))
            else:
                continue
            if text:
                paras.append(text)
        # get_text(" ") puts spaces inside "<tt>x</tt>," -> "x ,"; undo before punctuation.
        paras = [re.sub(r" ([,.;:!?)])", r"\1", p) for p in paras]
        entries.append(Entry("fetchmail", label.group(1), label.group(2), tuple(paras)))
    return entries


# --- git: AsciiDoc gitfaq(7) --------------------------------------------------------------

_GIT_ITEM = re.compile(r"^(\S.*)::$")
_GIT_ANCHOR = re.compile(r"^\[\[[^\]]+\]\]$")


def _asciidoc_inline(text: str) -> str:
    """Plain text of AsciiDoc inline markup used by gitfaq."""
    text = re.sub(r"linkgit:([\w.-]+)\[(\d)\]", r"\1(\2)", text)
    text = re.sub(r"<<[^,>]+,([^>]+)>>", r"\1", text)
    text = re.sub(r"<<([^>]+)>>", r"\1", text)
    text = re.sub(r"`([^`]*)`", r"\1", text)
    text = re.sub(r"(?<!\w)_([^_]+)_(?!\w)", r"\1", text)
    text = re.sub(r"(?<!\w)\*([^*]+)\*(?!\w)", r"\1", text)
    return text


def _git_is_chapter(lines: Sequence[str], i: int) -> bool:
    # A chapter title is underlined with dashes of its own length ("Hooks" / "-----"); a
    # "----" code fence has no title line of the same length above it.
    nxt = lines[i + 1] if i + 1 < len(lines) else ""
    line = lines[i]
    return bool(line.strip()) and set(nxt) == {"-"} and len(nxt) == len(line)


def parse_git(path: Path) -> list[Entry]:
    """Entries of gitfaq(7)'s AsciiDoc source: ``Question?::`` items under chapter titles."""
    lines = path.read_text(encoding="utf-8").splitlines()
    entries: list[Entry] = []
    chapter = 0
    item = 0
    current: tuple[str, str] | None = None
    body: list[str] = []

    def flush() -> None:
        if current is not None:
            paras = paragraphs_of(_asciidoc_inline(b) for b in body)
            entries.append(Entry("git", current[0], current[1], paras))

    i = 0
    while i < len(lines):
        line = lines[i]
        if _git_is_chapter(lines, i):
            flush()
            current, body = None, []
            if line.strip() not in ("NAME", "SYNOPSIS", "DESCRIPTION", "GIT"):
                chapter, item = chapter + 1, 0
            i += 2
            continue
        match = _GIT_ITEM.match(line)
        if match and chapter:
            flush()
            item += 1
            current, body = (f"{chapter}.{item}", _asciidoc_inline(match.group(1))), []
        elif _GIT_ANCHOR.match(line):
            pass
        elif current is not None:
            # "+" joins list continuations and "----" fences code: both are paragraph breaks.
            body.append("" if line.strip() in ("+", "----") else line)
        i += 1
    flush()
    return entries


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "zsh",
            "Z-Shell FAQ",
            "zsh-common",
            Path("/usr/share/doc/zsh-common/FAQ.gz"),
            parse_zsh,
            questions_only=True,
            notes="headings without a question mark (topic titles) are dropped",
        ),
        Source(
            "fetchmail",
            "Fetchmail FAQ",
            "fetchmail",
            Path("/usr/share/doc/fetchmail/fetchmail-FAQ.html"),
            parse_fetchmail,
            notes="symptom headings are kept: they are what users search with",
        ),
        Source(
            "git",
            "Git FAQ",
            "git-doc",
            Path("/usr/share/doc/git-doc/gitfaq.txt"),
            parse_git,
            notes="symptom headings are kept, as for fetchmail",
        ),
    )
}


# --- building -----------------------------------------------------------------------------


def package_version(package: str) -> str:
    """The installed version of a Debian package, or "unknown" off Debian."""
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "unknown"


def check_installed(sources: Sequence[Source]) -> None:
    """Fail with the packages to install when a source file is absent."""
    missing = [s for s in sources if not s.path.is_file()]
    if missing:
        lines = [f"  {s.path} (Debian package {s.package})" for s in missing]
        pkgs = " ".join(sorted({s.package for s in missing}))
        raise SystemExit(
            "faq_corpus: source files are missing:\n"
            + "\n".join(lines)
            + f"\ninstall them with: apt-get install -y {pkgs}\n"
            "(a minimal image may exclude /usr/share/doc through /etc/dpkg/dpkg.cfg.d/; "
            "remove that rule and reinstall the package)"
        )


def collect(sources: Sequence[Source], min_words: int) -> Build:
    """Parse every source and keep the entries that make a query with a real answer."""
    build = Build()
    for source in sources:
        for entry in source.parse(source.path):
            ref = f"{entry.source}-{entry.section}"
            question = clean_question(entry.question)
            if source.questions_only and "?" not in question:
                build.dropped_not_question.append(ref)
                continue
            if entry.words < min_words:
                build.dropped_short.append(ref)
                continue
            build.entries.append(Entry(entry.source, entry.section, question, entry.paragraphs))
    return build


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _jsonl(path: Path, rows: Iterable[Mapping[str, object]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_beir(build: Build, sources: Sequence[Source], out: Path, min_words: int) -> None:
    """Write corpus.jsonl, queries.jsonl, qrels/test.tsv and manifest.json under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "qrels").mkdir(exist_ok=True)
    titles = {s.name: s.title for s in sources}
    docs, queries, qrels = [], [], []
    for e in build.entries:
        doc_id, query_id = f"{e.source}-{e.section}", f"q-{e.source}-{e.section}"
        # The title names the FAQ and the entry number only: the heading must not leak in.
        docs.append({"_id": doc_id, "title": f"{titles[e.source]} {e.section}", "text": e.answer})
        queries.append(
            {
                "_id": query_id,
                "text": e.question,
                "metadata": {"source": e.source, "section": e.section},
            }
        )
        qrels.append(f"{query_id}\t{doc_id}\t1")
    _jsonl(out / "corpus.jsonl", docs)
    _jsonl(out / "queries.jsonl", queries)
    (out / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(line + "\n" for line in qrels),
        encoding="utf-8",
    )
    by_source = {s.name: sum(1 for e in build.entries if e.source == s.name) for s in sources}
    manifest = {
        # A fixed name, not the folder's: two builds into different folders stay identical.
        "name": "faq-tools",
        "description": "FAQ headings as queries, their answers (heading removed) as documents",
        "min_words": min_words,
        "documents": len(docs),
        "queries": len(queries),
        "by_source": by_source,
        "answer_words": {
            "min": min((e.words for e in build.entries), default=0),
            "median": sorted(e.words for e in build.entries)[len(build.entries) // 2]
            if build.entries
            else 0,
            "max": max((e.words for e in build.entries), default=0),
        },
        "dropped_short": build.dropped_short,
        "dropped_not_question": build.dropped_not_question,
        "sources": [
            {
                "name": s.name,
                "title": s.title,
                "debian_package": s.package,
                "version": package_version(s.package),
                "path": str(s.path),
                "sha256": _sha256(s.path),
                "notes": s.notes,
            }
            for s in sources
        ],
    }
    (out / "manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: parse the installed FAQs and write the BEIR folder."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output BEIR folder")
    parser.add_argument(
        "--sources",
        default=",".join(SOURCES),
        help=f"comma-separated FAQs to include (default: all of {', '.join(SOURCES)})",
    )
    parser.add_argument(
        "--min-words",
        type=int,
        default=DEFAULT_MIN_WORDS,
        help="drop entries whose answer has fewer words (default %(default)s)",
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.sources.split(",") if n.strip()]
    unknown = [n for n in names if n not in SOURCES]
    if unknown or not names:
        parser.error(f"--sources: unknown {unknown}; choose from {', '.join(SOURCES)}")
    sources = [SOURCES[n] for n in names]
    check_installed(sources)
    build = collect(sources, args.min_words)
    write_beir(build, sources, args.out, args.min_words)
    counts = ", ".join(
        f"{s.name} {sum(1 for e in build.entries if e.source == s.name)}" for s in sources
    )
    print(
        f"wrote {len(build.entries)} queries/documents to {args.out} ({counts}); dropped "
        f"{len(build.dropped_short)} short answers, {len(build.dropped_not_question)} "
        "non-question headings",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
