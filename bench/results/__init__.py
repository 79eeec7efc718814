"""Reading finished runs: frames for your own analysis (``load``, ``pairs``, ``hit``), the
paper-style tables, paired tests (``compare``), the CI gate (``check``), the HTML report and
the position-bias view of ``--permutations`` (``positions``)."""

from bench.results.frames import hit, load, pairs

__all__ = ["hit", "load", "pairs"]
