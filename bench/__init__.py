"""lavic-bench: the harness (CLI, config, registry, data, runner, metrics, results, tables)."""

__version__ = "0.1.0"
