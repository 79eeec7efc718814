"""lavic-bench: the harness (CLI, config, registry, data, runner, metrics, cache, results, tables)."""

__version__ = "0.1.0"
