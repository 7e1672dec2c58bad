"""Loading a config: the file read and parsed, `SEGWATCH_<SECTION>__<KEY>` environment overrides merged in,
the models validated, and every problem reported on a line of its own, naming its key and where it came from.

Relative paths are resolved against the config file's directory, so the daemon behaves the same whatever
directory it was started from.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from segwatch.config.kinds import shown
from segwatch.config.model import Config
from segwatch.config.yamltext import StrictLoader
from segwatch.errors import ConfigError

__all__ = ["ENV_PREFIX", "config_from_mapping", "load_config"]

ENV_PREFIX = "SEGWATCH_"


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment (`os.environ` when `env` is None), validate.

    Relative paths in the file are relative to the file's directory. Raises ConfigError naming the file.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {file} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {file} cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {file} is not UTF-8 text: {exc}") from None
    try:
        data = yaml.load(text, Loader=StrictLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {file} is not valid YAML: {exc}") from None
    if data is None:
        # An empty file is a config whose every value comes from defaults and the environment.
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"config file {file}: expected a mapping of sections (watch, tensorboard, ...) at the top level, "
            f"got {type(data).__name__}"
        )
    # The directory exists (the file was just read), so resolving it is exact; the file itself is not
    # resolved, so a config symlinked into place keeps paths relative to where the link is.
    return _build(data, env, base_dir=file.absolute().parent.resolve(), origin=str(file))


def config_from_mapping(
    data: Mapping[str, Any], env: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> Config:
    """Validate an already-parsed config, with environment overrides (`os.environ` when `env` is None).

    Relative paths are resolved against `base_dir`, or the current directory when it is None.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping of sections at the top level, got {type(data).__name__}")
    return _build(data, env, base_dir=base_dir, origin=None)


def _build(
    data: Mapping[Any, Any], env: Mapping[str, str] | None, base_dir: Path | None, origin: str | None
) -> Config:
    # A section whose keys are all commented out parses as null; it means "all defaults", not "not a mapping".
    merged = {
        key: {} if value is None and key in Config.model_fields else value for key, value in data.items()
    }
    problems, sources = _apply_env(merged, os.environ if env is None else env)
    base = (Path.cwd() if base_dir is None else Path(base_dir)).absolute()
    config = None
    try:
        config = Config.model_validate(merged, context={"base_dir": base})
    except ValidationError as exc:
        problems.extend(_describe(error, sources) for error in exc.errors(include_url=False))
    if problems or config is None:
        where = f" in {origin}" if origin else ""
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        raise ConfigError(f"invalid configuration{where} ({count}):\n" + "\n".join(problems))
    return config


def _apply_env(data: dict[Any, Any], env: Mapping[str, str]) -> tuple[list[str], dict[tuple[str, str], str]]:
    """Merge `SEGWATCH_<SECTION>__<KEY>` overrides into `data`; return the problems and who set what."""
    problems: list[str] = []
    sources: dict[tuple[str, str], str] = {}
    sections = _section_models()
    for name in sorted(env):
        rest = name[len(ENV_PREFIX) :]
        # Variables without the double underscore (SEGWATCH_CONFIG, ...) belong to other parts of segwatch.
        if not name.startswith(ENV_PREFIX) or "__" not in rest:
            continue
        section, _, key = rest.lower().partition("__")
        if section not in sections:
            problems.append(
                f"{name}: unknown section {shown(section)}, expected one of {', '.join(sections)}"
            )
            continue
        if key not in sections[section].model_fields:
            problems.append(f"{name}: unknown key {section}.{key}{_suggestion(key, sections[section])}")
            continue
        try:
            value = yaml.load(env[name], Loader=StrictLoader)
            parsed = not isinstance(value, Mapping)
        except yaml.YAMLError:
            parsed = False
        if not parsed:
            problems.append(f"{name}: expected a YAML scalar or a [list], got {shown(env[name])}")
            continue
        current = data.get(section)
        if current is None:
            current = {}
        # A section that is not a mapping in the file cannot take a key; validation reports the file's error.
        if isinstance(current, Mapping):
            data[section] = {**current, key: value}
            sources[(section, key)] = name
    return problems, sources


def _section_models() -> dict[str, type[BaseModel]]:
    return {
        name: field.annotation
        for name, field in Config.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    }


def _describe(error: ErrorDetails, sources: Mapping[tuple[str, str], str]) -> str:
    """One line `<key path>: <what was expected>, got <what came>` for one validation error."""
    loc = error["loc"]
    kind = error["type"]
    if kind == "missing":
        text = "required"
    elif kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        text = "unknown key" + (_suggestion(str(loc[-1]), parent) if parent else "")
    elif kind == "value_error":
        # The exception itself carries our message; error["msg"] would add pydantic's "Value error, ".
        text = str(error.get("ctx", {}).get("error", error["msg"]))
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        text = f"expected a mapping, got {shown(error['input'])}"
    else:
        msg = error["msg"]
        text = f"{msg[:1].lower()}{msg[1:]}, got {shown(error['input'])}"
    source = sources.get((str(loc[0]), str(loc[1]))) if len(loc) >= 2 else None
    # Checks across sections name their keys themselves.
    where = f"{_key_path(loc)}: " if loc else ""
    return f"{where}{text}" + (f" (from {source})" if source else "")


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "(top level)"


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _suggestion(key: str, model: type[BaseModel]) -> str:
    close = difflib.get_close_matches(key, list(model.model_fields), n=1)
    return f" (did you mean {close[0]}?)" if close else ""
