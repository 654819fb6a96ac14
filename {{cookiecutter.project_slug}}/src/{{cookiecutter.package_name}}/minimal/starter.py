"""`run`: start `StatsWorkflow` over some URLs, wait, print one line per page.

Exit codes: 0 when the workflow completed (a page that failed to download is a line of
the result, not a failure of the run), 1 when the workflow failed or Temporal cannot be
reached, 2 for bad input (a URL file that cannot be read or is not text). The rest is
`runtime/starter.py`'s: links to stderr, the result to stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..runtime.starter import InputError, printable, read_urls, start_and_print
from .models import StatsRequest, StatsResult
from .settings import MinimalSettings
from .workflows import StatsWorkflow


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `python -m <package> run`."""
    parser.add_argument("urls", nargs="*", metavar="URL", help="URLs to download")
    parser.add_argument("--urls-file", type=Path, help="file with one URL per line")
    parser.add_argument("--workflow-id", help="workflow id (default: stats-<random>)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def main(settings: MinimalSettings, args: argparse.Namespace) -> int:
    """`run`: the process exit code."""
    try:
        urls = read_urls(args.urls, args.urls_file)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not urls:
        print("error: no URLs given (pass them as arguments or with --urls-file)", file=sys.stderr)
        return 2
    request = StatsRequest(
        urls=urls,
        rounds=settings.stats_rounds,
        heartbeat_timeout_seconds=settings.heartbeat_timeout_seconds,
    )
    return start_and_print(
        settings,
        StatsWorkflow.run,
        request,
        "stats",
        workflow_id=args.workflow_id,
        show=None if args.json else summary,
    )


def summary(result: StatsResult) -> str:
    """One line per page, then the totals; a URL's control characters escaped (`\\x1b`), so
    that a hostile URL cannot drive the terminal."""
    lines = []
    for page in result.pages:
        if page.stats is None:
            lines.append(f"{page.url}  failed: {page.error}")
            continue
        top = " ".join(f"{word}({count})" for word, count in page.stats.top)
        lines.append(
            f"{page.url}  {page.stats.words} words, {page.stats.unique} distinct; top: {top}"
        )
    failed = sum(page.stats is None for page in result.pages)
    lines.append(f"{len(result.pages)} pages: {len(result.pages) - failed} done, {failed} failed")
    return printable("\n".join(lines))
