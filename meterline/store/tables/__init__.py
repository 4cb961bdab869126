"""The tables, one module per concept; :mod:`meterline.store.schema` gathers them."""
