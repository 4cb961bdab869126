"""Use cases shared by the HTTP API, the CLI and the gateway; they orchestrate domain and store."""
