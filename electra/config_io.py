"""Configs to and from JSON, and `section.field=value` overrides from the command line.

Kept apart from the config classes: this is the one place that knows how text becomes typed
values, with every rejection a one-line `ConfigError` naming the key."""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from pathlib import Path
from typing import Any

from electra.errors import ConfigError

_INT_LIMIT = 2**63  # what numpy and torch can hold; larger values are typos

def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Rebuild a config tree; unknown keys and values of the wrong type are errors, so stale or
    hand-edited JSON is caught here rather than deep inside a run."""
    if not isinstance(data, dict):
        raise ConfigError(f"config {prefix.rstrip('.') or cls.__name__} is a JSON "
                          f"{type(data).__name__}, not an object of {cls.__name__} fields")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        key = sorted(unknown)[0]
        hint = difflib.get_close_matches(key, names, n=1)
        raise ConfigError(f"unknown config key {prefix + key!r} for {cls.__name__}"
                          + (f"; did you mean {hint[0]!r}?" if hint else ""))
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            value = from_dict(tp, value, f"{prefix}{name}.")
        elif not _has_type(value, tp):
            raise ConfigError(f"config value {prefix}{name}={repr(value)[:40]} is not a valid "
                              f"{_type_name(tp)}; fix it or start from a preset")
        kwargs[name] = value
    return cls(**kwargs)


def _has_type(value: Any, tp: Any) -> bool:
    """`value` fits the annotation `tp` (an int where a float is expected is fine; floats finite)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_has_type(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return type(value) is bool
    if tp is int:
        return type(value) is int and -_INT_LIMIT < value < _INT_LIMIT
    if tp is float:
        return type(value) in (int, float) and math.isfinite(value)
    return isinstance(value, typing.get_origin(tp) or tp)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return "null" if tp is type(None) else "finite float" if tp is float else getattr(tp, "__name__", str(tp))


def save_json(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_dict(cfg), indent=2) + "\n")


def load_json(cls: type, path: str | Path) -> Any:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # ValueError: JSONDecodeError and UnicodeDecodeError
        raise ConfigError(f"cannot read config {path}: {e}; restore it or start a new run") from None
    return from_dict(cls, data)


def _parse_value(text: str, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if text.lower() in ("none", "null"):
            return None
        return _parse_value(text, args[0], key)
    try:
        if tp is bool:
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if tp is int:
            value = int(float(text)) if ("e" in text.lower() and float(text).is_integer()) else int(text)
            if not -_INT_LIMIT < value < _INT_LIMIT:
                shown = text if len(text) <= 24 else text[:24] + "..."
                raise ConfigError(f"{key}={shown!r} is out of range; give a value below 2**63")
            return value
        if tp is float:
            value = float(text)
            if not math.isfinite(value):
                raise ConfigError(f"{key}={text!r} is not a finite number; give a value such as 0.1")
            return value
        if tp is str:
            return text
    except (ValueError, OverflowError):
        allowed = "true or false (yes/no, on/off, 1/0)" if tp is bool else f"a valid {tp.__name__}"
        raise ConfigError(f"{key}={text!r} is not {allowed}") from None
    raise ConfigError(f"{key} cannot be set from the command line")


def _leaf_keys(cls: Any, prefix: str = "") -> list[str]:
    """Every settable key under a config class (`optim.lr`, ...): a key given without its
    section is found by its last part."""
    out: list[str] = []
    for f in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls)[f.name]
        out += _leaf_keys(tp, f"{prefix}{f.name}.") if dataclasses.is_dataclass(tp) else [prefix + f.name]
    return out


def override_key(item: str) -> str:
    """The key of a `section.field=value` item (the whole item where it has no `=`)."""
    return item.partition("=")[0].strip()


def apply_overrides(cfg: Any, overrides: list[str], section: str = "") -> Any:
    """Return a new config with `section.field=value` overrides applied and re-validated.
    `section` ("preprocess."): `cfg` is that section alone, and messages name keys in full."""
    data = to_dict(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form section.field=value")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        key = section + key.strip()
        node_cls, node = type(cfg), data
        for i, part in enumerate(parts):
            names = [f.name for f in dataclasses.fields(node_cls)]
            if part not in names:
                if section and i == 0 and len(parts) > 1:  # model.hidden_size given to `electra preprocess`
                    raise ConfigError(f"{'.'.join(parts)} is not a {section[:-1]} setting; this command takes "
                                      f"{section}* keys")
                prefix = ".".join(parts[:i])
                candidates = [f"{prefix}.{n}" if prefix else n for n in names]
                full = ".".join(parts[: i + 1])
                near = difflib.get_close_matches(part, names, n=1)
                hint = ([".".join([*parts[:i], near[0], *parts[i + 1:]])] if near
                        else difflib.get_close_matches(full, candidates, n=1)
                        or [k for k in _leaf_keys(node_cls) if k.endswith("." + ".".join(parts[i:]))])
                raise ConfigError(f"unknown config key {key!r}"
                                  + ("; did you mean " + " or ".join(repr(section + h) for h in hint) + "?"
                                     if hint else ""))
            tp = typing.get_type_hints(node_cls)[part]
            if i == len(parts) - 1:
                if dataclasses.is_dataclass(tp):
                    raise ConfigError(f"{key} is a section; set one of its fields, e.g. {key}.{dataclasses.fields(tp)[0].name}=...")
                node[part] = _parse_value(text.strip(), tp, key)
            else:
                if not dataclasses.is_dataclass(tp):
                    raise ConfigError(f"{section + '.'.join(parts[: i + 1])} is not a section")
                node_cls, node = tp, node[part]
    return from_dict(type(cfg), data)
