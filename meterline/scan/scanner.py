"""Walk source trees and match the rule table (``meterline scan``); no click here.

:func:`collect` lists the files to read, :func:`scan_file` reads one and :func:`scan_text`
matches its text. The CLI drives the two so it can show progress; :func:`scan` does both.
"""

from __future__ import annotations

import codecs
import os
import stat
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from itertools import accumulate
from typing import Any, NamedTuple

from meterline.errors import InvalidInput
from meterline.scan.rules import (
    BASE_URL,
    COMMENT_PREFIXES,
    EXTENSIONS,
    HOST_RULES,
    PROVIDER_NAMES,
    RULES_BY_LANGUAGE,
    SUPPRESS,
    Kind,
    Language,
    Rule,
    Severity,
)

MAX_BYTES = 2 * 1024 * 1024
#: Only the start is searched for NUL bytes: enough to tell a binary file from source.
BINARY_SNIFF = 8192
#: Third-party, generated or tool-owned trees: their AI calls are not this project's.
SKIP_DIRS = frozenset({".git", "node_modules", "venv", ".venv", "__pycache__", "dist", "build",
                       "vendor", "site-packages", ".tox", ".nox"})
#: A directory holding this file is a virtualenv, whatever its name.
VENV_MARKER = "pyvenv.cfg"


class SourceFile(NamedTuple):
    path: str
    language: Language


class Skipped(NamedTuple):
    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class Finding:
    path: str
    line: int
    severity: Severity
    kind: Kind
    provider: str
    match: str
    message: str
    fix: str

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "severity": self.severity,
                "kind": self.kind, "provider": self.provider, "match": self.match,
                "message": self.message, "fix": self.fix}


@dataclass(slots=True)
class Report:
    findings: list[Finding] = field(default_factory=list)
    files_scanned: int = 0
    skipped: list[Skipped] = field(default_factory=list)


class _Unreadable(Exception):
    pass


# --- walking -----------------------------------------------------------------------------------

def _patterns(exclude: Iterable[str]) -> tuple[str, ...]:
    """``./gen/`` and ``gen`` mean the same directory."""
    cleaned = (p.strip().removeprefix("./").rstrip("/") for p in exclude)
    return tuple(p for p in cleaned if p)


def _excluded(patterns: tuple[str, ...], *names: str) -> bool:
    return any(fnmatchcase(name, p) for p in patterns for name in names)


def _posix(path: str) -> str:
    return path.replace(os.sep, "/")


def collect(paths: Sequence[str], exclude: Iterable[str] = ()) -> tuple[list[SourceFile],
                                                                          list[Skipped]]:
    """The source files under ``paths`` (files or directories), in a stable order.

    An exclude glob is matched (``*`` also crossing ``/``) against a file's or directory's path
    relative to the PATH it was found under, its path as shown, and its name. A missing PATH is
    an :class:`InvalidInput`; an unreadable directory is reported as skipped.
    """
    patterns = _patterns(exclude)
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise InvalidInput(f"{missing[0]}: no such file or directory", field="path")
    files: list[SourceFile] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()

    def add(path: str, relative: str) -> None:
        shown = os.path.normpath(path)
        language = EXTENSIONS.get(os.path.splitext(path)[1].lower())
        real = os.path.realpath(path)
        if language is None or real in seen:
            return
        if _excluded(patterns, _posix(relative), _posix(shown), os.path.basename(path)):
            return
        seen.add(real)
        files.append(SourceFile(shown, language))

    def unreadable(exc: OSError) -> None:
        skipped.append(Skipped(os.path.normpath(exc.filename or "."),
                               f"cannot read ({exc.strerror})"))

    for root in paths:
        if not os.path.isdir(root):
            add(root, root)
            continue
        for directory, dirnames, filenames in os.walk(root, onerror=unreadable):
            relative_dir = os.path.relpath(directory, root)
            kept = []
            for name in sorted(dirnames):
                relative = os.path.normpath(os.path.join(relative_dir, name))
                path = os.path.join(directory, name)
                if (name in SKIP_DIRS or os.path.exists(os.path.join(path, VENV_MARKER))
                        or _excluded(patterns, _posix(relative), _posix(os.path.normpath(path)),
                                     name)):
                    continue
                kept.append(name)
            dirnames[:] = kept
            for name in sorted(filenames):
                add(os.path.join(directory, name),
                    os.path.normpath(os.path.join(relative_dir, name)))
    return files, skipped


# --- reading -----------------------------------------------------------------------------------

def decode(data: bytes) -> str:
    """Source text. Bytes that are not UTF-8 (a GBK or Latin-1 file) become U+FFFD: every
    pattern is ASCII, so such a file is still checked rather than passed over."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace")
    if b"\0" in data[:BINARY_SNIFF]:
        raise _Unreadable("binary")
    return data.decode("utf-8-sig", errors="replace")


def _read(path: str) -> str:
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):  # a FIFO named x.py would block the read
            raise _Unreadable("not a regular file")
        if info.st_size > MAX_BYTES:
            raise _Unreadable("larger than 2 MB")
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise _Unreadable(f"cannot read ({exc.strerror})") from None
    if len(data) > MAX_BYTES:  # grew since the stat
        raise _Unreadable("larger than 2 MB")
    return decode(data)


# --- matching ----------------------------------------------------------------------------------

def _message(rule: Rule, match: str, redirect_line: int | None) -> tuple[Severity, str]:
    name = PROVIDER_NAMES[rule.provider]
    if rule.kind == "provider_host":
        return rule.severity, f"hard-coded {name} endpoint {match} bypasses the meterline gateway"
    if not rule.gateway_compatible:
        return rule.severity, (f"{name} SDK imported ({match}): it calls {name} directly, "
                               "not through the meterline gateway")
    if redirect_line is not None:
        return "low", (f"{name} SDK imported ({match}); this file sets a base URL on line "
                       f"{redirect_line}: check that it is the meterline gateway")
    return rule.severity, (f"{name} SDK imported ({match}): its calls bypass the meterline "
                           "gateway unless the client's base URL points at it")


def _redirect_line(lines: list[str], comment: tuple[str, ...]) -> int | None:
    """The first line that sets a client's base URL to something other than a provider host."""
    for number, line in enumerate(lines, start=1):
        if (BASE_URL.search(line) and not line.lstrip().startswith(comment)
                and not any(r.pattern.search(line) for r in HOST_RULES)):
            return number
    return None


def scan_text(text: str, language: Language, path: str = "<text>") -> list[Finding]:
    """Findings of one file's text, by line, then in rule-table order."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lowered = text.lower()
    rules = [r for r in RULES_BY_LANGUAGE[language] if any(n in lowered for n in r.needles)]
    if not rules:
        return []
    lines = text.split("\n")
    starts = list(accumulate((len(line) + 1 for line in lines[:-1]), initial=0))
    comment = COMMENT_PREFIXES[language]
    hits: dict[tuple[int, int], tuple[Rule, str]] = {}
    for order, rule in enumerate(rules):
        for found in rule.pattern.finditer(text):
            number = bisect_right(starts, found.start())
            line = lines[number - 1]
            if ((number, order) in hits or line.lstrip().startswith(comment)
                    or SUPPRESS.search(line) or (rule.unless and rule.unless.search(line))):
                continue
            hits[number, order] = (rule, found.group(0).strip())
    redirect = None
    if any(rule.gateway_compatible for rule, _ in hits.values()):
        redirect = _redirect_line(lines, comment)
    findings = []
    for (number, _), (rule, match) in sorted(hits.items()):
        severity, message = _message(rule, match, redirect)
        findings.append(Finding(path, number, severity, rule.kind, rule.provider, match,
                                message, rule.fix))
    return findings


def scan_file(source: SourceFile, report: Report) -> None:
    """Read and match one file into ``report``; an unreadable file is noted, never raised."""
    try:
        text = _read(source.path)
    except _Unreadable as exc:
        report.skipped.append(Skipped(source.path, str(exc)))
        return
    report.files_scanned += 1
    report.findings.extend(scan_text(text, source.language, source.path))


def scan(paths: Sequence[str], exclude: Iterable[str] = ()) -> Report:
    files, skipped = collect(paths, exclude)
    report = Report(skipped=skipped)
    for source in files:
        scan_file(source, report)
    return report
