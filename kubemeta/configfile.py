"""Reading kubemeta.yaml: every problem said with its file and line, duplicate
keys refused, and, for the processes rsyslog and systemd run, a config that
keeps what was good in a broken file instead of falling back to the built-in
defaults.

``load`` is strict: any problem is a ConfigError (check, enrich, tests).
``load_lenient`` is for the helpers and the daemon, which must go on: it keeps
every valid value of a broken file; a file that cannot be read or parsed at
all is replaced by the last file that loaded cleanly (saved in state_dir by
``save_last_good``, secrets left out). Either way the problems are returned,
for the log, the counters and ``check``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubemeta import files, jsonlib
from kubemeta.config import SECRET_FIELDS, Config, check_value, from_mapping
from kubemeta.errors import ConfigError

# Where the shipped snippets point every helper (--config), and where check looks.
DEFAULT_PATH = "/etc/kubemeta/kubemeta.yaml"
LAST_GOOD = "config.last-good.json"
MAX_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Document:
    """A config file's top-level keys and the line each is on."""

    path: str
    data: Mapping[str, Any]
    lines: Mapping[str, int]

    def at(self, key: str) -> str:
        """``path:line: `` for ``key``, or ``path: ``."""
        line = self.lines.get(key)
        return f"{self.path}:{line}: " if line else f"{self.path}: "


@dataclass(frozen=True)
class Loaded:
    config: Config
    problems: tuple[str, ...] = ()  # each names the file and line
    origin: str = "file"  # file, valid values, last good, defaults


def read(path: str) -> Document:
    import yaml

    try:
        with open(path, "rb") as f:
            text = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from e
    if len(text) > MAX_BYTES:
        raise ConfigError(f"config file {path} is larger than 1 MiB")
    loader = _loader(yaml)(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _Duplicate as e:
        raise ConfigError(f"{path}:{e.line}: {e.key}: given twice (first on line {e.first}); "
                          "keep one") from None
    except yaml.YAMLError as e:
        # Where and what, never the line itself: it may hold the token.
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        problem = getattr(e, "problem", None) or type(e).__name__
        # The parser's own phrases, never the text: "while scanning a quoted scalar".
        context, cmark = getattr(e, "context", None), getattr(e, "context_mark", None)
        if context and cmark:
            problem += f" ({context} that starts at line {cmark.line + 1}, " \
                       f"column {cmark.column + 1})"
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    finally:
        loader.dispose()
    if data is None:
        return Document(path, {}, {})
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys, got {type(data).__name__}")
    lines = {str(k.value): k.start_mark.line + 1 for k, _ in node.value
             if isinstance(k, yaml.ScalarNode)}
    return Document(path, data, lines)


def load(path: str | None, overrides: Mapping[str, Any] | None = None) -> Config:
    """The config in ``path`` (if any) with ``overrides`` on top; any problem raises."""
    doc = read(path) if path is not None else Document("", {}, {})
    values = dict(doc.data)
    values.update(overrides or {})
    try:
        return from_mapping(values, where=lambda k: doc.at(k) if k in doc.data else "")
    except ConfigError as e:
        if path is None or str(e).startswith(path):
            raise
        raise ConfigError(f"{_where(doc, str(e))}{e}") from None


def load_lenient(path: str | None, overrides: Mapping[str, Any] | None = None) -> Loaded:
    """What a process that must not stop runs with. Never raises."""
    overrides = dict(overrides or {})
    try:
        return Loaded(load(path, overrides))
    except ConfigError as e:
        first = str(e)
    try:
        doc = read(path) if path is not None else Document("", {}, {})
        origin = "valid values"
    except ConfigError:
        doc = _last_good(overrides.get("state_dir") or Config().state_dir)
        origin = "last good" if doc.data else "defaults"
    values = {**doc.data, **overrides}
    problems = [first]
    kept = {k: v for k, v in values.items() if _valid_alone(k, v)}
    while True:
        try:
            return Loaded(from_mapping(kept), tuple(problems), origin)
        except ConfigError as e:
            culprit = _culprit(str(e), kept)
            if culprit is None:  # pragma: no cover - every check names a key
                return Loaded(Config(), tuple(problems), "defaults")
            del kept[culprit]


def save_last_good(path: str, cfg: Config) -> None:
    """Remember a config that loaded cleanly, for a later broken file (OSError
    is the caller's to report). Secrets stay out: a literal token is not kept."""
    data = {k: v for k, v in read(path).data.items() if k not in SECRET_FIELDS}
    files.replace(os.path.join(cfg.state_dir, LAST_GOOD),
                  jsonlib.dumps({"path": path, "config": data}), 0o600)


def _last_good(state_dir: str) -> Document:
    where = os.path.join(state_dir, LAST_GOOD)
    try:
        with open(where, "rb") as f:
            saved = jsonlib.loads(f.read(MAX_BYTES))
        data = saved["config"]
        if isinstance(data, dict):
            return Document(where, data, {})
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return Document(where, {}, {})


def _valid_alone(key: str, value: Any) -> bool:
    try:
        check_value(key, value)
    except ConfigError:
        return False
    return True


def _culprit(message: str, kept: Mapping[str, Any]) -> str | None:
    """The key a cross-field problem names first, of those still kept."""
    for word in re.findall(r"[a-z][a-z_]+", message):
        if word in kept:
            return str(word)
    return next((str(k) for k in kept), None)


def _where(doc: Document, message: str) -> str:
    m = re.match(r"[a-z_]+", message)
    return doc.at(m.group()) if m and m.group() in doc.data else doc.at("")


class _Duplicate(Exception):
    def __init__(self, key: str, line: int, first: int) -> None:
        super().__init__(key)
        self.key, self.line, self.first = key, line, first


def _loader(yaml: Any) -> Any:
    class Loader(yaml.SafeLoader):  # type: ignore[misc]
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise _Duplicate(str(key), line, seen[key])
                    seen[key] = line
                except TypeError:  # an unhashable key: SafeLoader says so itself
                    break
            return super().construct_mapping(node, deep)

    return Loader


__all__ = ["DEFAULT_PATH", "Document", "Loaded", "load", "load_lenient", "read",
           "save_last_good"]
