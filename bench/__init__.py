"""lavic-bench: the harness, in four layers; a layer imports only the layers below it.

- ``bench.cli`` (+ ``cli_errors``): the ``bench`` command, on top.
- ``bench.results``: reading finished runs -- frames, tables, paired tests, the CI gate, the
  report.
- ``bench.execution``: running a grid -- the runner, result storage, caches, data parallelism.
- ``bench.task``: the task -- datasets, the retriever/generator protocols, the prompt, the
  answer parser, metrics and their statistics.
- ``bench.core``: what a run is and how options are read -- errors, option schemas,
  registries, bench.toml, the build context, weights and the environment.

``pyproject.toml`` ``[tool.importlinter]`` holds these layers as contracts (tests/test_layers.py).
What a plug-in needs is re-exported here (README "Plug-ins"): ``from bench import retrievers``.
"""

from bench.core.context import BuildContext
from bench.core.errors import BenchError, Warnings
from bench.core.options import NoOptions, Options, takes
from bench.core.registry import datasets, generators, retrievers
from bench.task.data.schema import Catalog, Conversation, Item
from bench.task.protocols import CachedGenerator, Choice, Generator, Request, Retriever

__version__ = "0.1.0"
__all__ = [
    "BenchError", "BuildContext", "CachedGenerator", "Catalog", "Choice", "Conversation",
    "Generator", "Item", "NoOptions", "Options", "Request", "Retriever", "Warnings",
    "datasets", "generators", "retrievers", "takes",
]
