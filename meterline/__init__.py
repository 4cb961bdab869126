"""meterline: LLM API gateway and billing service."""

__version__ = "0.1.0"
