"""The proxy: OpenAI- and Anthropic-compatible routes that meter every call."""
