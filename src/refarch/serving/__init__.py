"""The scoring app: any refarch pyfunc model behind HTTP with API keys, validation, health and metrics."""
