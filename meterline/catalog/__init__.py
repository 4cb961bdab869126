"""The price catalog that ships with the package, and importers from other formats."""

from meterline.catalog.shipped import load_catalog, parse_catalog_file

__all__ = ["load_catalog", "parse_catalog_file"]
