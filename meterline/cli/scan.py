"""``meterline scan PATH…``: a compliance check for CI; it needs no database and no config."""

from __future__ import annotations

import sys
from collections import Counter

import click

from meterline.cli.main import emit_json, handle_errors, json_option
from meterline.scan.rules import SEVERITIES
from meterline.scan.scanner import Report, collect, scan_file

#: Below this many files a scan takes well under a second: a bar would only flicker.
PROGRESS_FROM = 200


def _summary(report: Report) -> str:
    findings = report.findings
    scanned = f"{report.files_scanned} file{'s' if report.files_scanned != 1 else ''} scanned"
    skipped = f", {len(report.skipped)} skipped" if report.skipped else ""
    if not findings:
        return f"no AI calls bypassing the gateway found ({scanned}{skipped})"
    counts = Counter(f.severity for f in findings)
    by_severity = ", ".join(f"{counts[s]} {s}" for s in SEVERITIES if counts[s])
    files = len({f.path for f in findings})
    return (f"{len(findings)} finding{'s' if len(findings) != 1 else ''} ({by_severity}) in "
            f"{files} file{'s' if files != 1 else ''}; {scanned}{skipped}")


@click.command("scan")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--exclude", "excludes", multiple=True, metavar="GLOB",
              help="Skip files and directories matching GLOB (relative path or name; "
                   "repeatable).")
@json_option
@handle_errors
def scan(paths: tuple[str, ...], excludes: tuple[str, ...], as_json: bool) -> None:
    """Find AI calls that bypass the gateway: provider SDK imports and provider URLs.

    Scans Python, TypeScript/JavaScript, Java and Go files under each PATH (a file or a
    directory) and prints each finding as `path:line: severity: message (fix: …)`. A provider
    URL is high, an SDK import medium (low when the file sets a base URL that may be the
    gateway's). A line holding `meterline: allow` is not reported.

    Exit status: 0 nothing found, 1 findings (so CI fails), 2 bad input.
    """
    files, skipped = collect(paths, excludes)
    report = Report(skipped=skipped)
    if len(files) > PROGRESS_FROM:
        with click.progressbar(files, label="scanning",
                               file=sys.stderr) as bar:
            for source in bar:
                scan_file(source, report)
    else:
        for source in files:
            scan_file(source, report)
    for skip in report.skipped:
        click.echo(f"note: {skip.path}: skipped ({skip.reason})", err=True)
    if as_json:
        emit_json({"findings": [f.as_json() for f in report.findings],
                   "files_scanned": report.files_scanned})
    else:
        for f in report.findings:
            click.echo(f"{f.path}:{f.line}: {f.severity}: {f.message} (fix: {f.fix})")
        click.echo(_summary(report))
    if report.findings:
        sys.exit(1)


def register(cli: click.Group) -> None:
    cli.add_command(scan)
