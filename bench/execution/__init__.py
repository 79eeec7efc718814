"""Running a grid: the runner, each cell's identity and payload, result storage, the array and
response caches, data parallelism, progress bars and the ``--permutations`` orders."""
