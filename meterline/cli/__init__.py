"""Command-line adapter (click)."""
