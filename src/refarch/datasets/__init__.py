"""Real loaders (download, checksum, cache) and generators of realistic data."""
