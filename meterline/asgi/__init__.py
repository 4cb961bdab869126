"""The HTTP pieces the gateway and the admin API share, so that neither imports the other.

    errors.py       the one table from meterline's errors to HTTP answers (both wire shapes)
    responses.py    JSON responses (orjson, Decimal as strings) and reading JSON bodies
"""
