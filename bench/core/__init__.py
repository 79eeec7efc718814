"""What a run is and how options are read: errors, option schemas, the registries, bench.toml,
the context a factory receives, model weights and the environment. Imports nothing above it."""
