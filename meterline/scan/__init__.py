"""``meterline scan``: find AI calls that bypass the gateway (provider SDKs, provider URLs)."""

from __future__ import annotations

from meterline.scan.rules import RULES, Rule
from meterline.scan.scanner import Finding, Report, SourceFile, collect, scan, scan_file, scan_text

__all__ = ["RULES", "Finding", "Report", "Rule", "SourceFile", "collect", "scan", "scan_file",
           "scan_text"]
