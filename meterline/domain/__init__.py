"""The pure core: money, usage, prices, rating. Imports no web framework, ORM or HTTP client."""
