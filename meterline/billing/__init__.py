"""Provider bills and balances, fetched from the providers' billing APIs or read from their
console exports (``meterline sync``; docs/reconcile.md, "Syncing bills from the providers").

Layers, lowest first: ``signing`` (each provider's request signature, pure functions, no I/O),
``lines`` and ``formats`` (amounts, days and console CSV files into billed lines, pure),
``http`` (one provider account's HTTP client: throttle, retries, errors), ``connectors`` (one
module a provider: its requests and answers), ``sync`` (fetch and store), ``alerting`` (the
alerts a sync raises), ``runs`` (a sync recorded from start to end: what the CLI and the API
call), ``schedule`` (the server's daily sync). Nothing here imports a web framework; the
providers' SDKs are not used (see docs/decisions.md, "Provider bills").
"""
