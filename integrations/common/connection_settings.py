"""Connection settings each provider declares: names, types, ranges and defaults.

A small declarative schema of our own (not Django form fields): one declaration is read two ways.

- ``validate`` is strict, for where a person types a value (the admin connection form, the
  ``connection_create``/``connection_settings`` commands): every bad or unknown key gets its own
  message, and nothing is stored until all are fixed.
- ``read`` is lenient, for where a stored value is used (a receiver verifying a signature, a
  poller): a missing or unreadable value takes its default and a number is clamped into its safe
  range. Values stored before validation existed, or edited in the database, can therefore never
  switch a check off (a tolerance of 0) or make a receiver fail (a tolerance of "five").

Form fields were the other choice; they would tie the providers to Django forms and still need a
second, lenient reader for use time, which is the part that keeps receivers safe.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator


class SettingsInvalid(ValueError):
    """Settings that fail validation; ``errors`` maps each setting name to its message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))


@dataclass(frozen=True)
class Setting:
    """One named setting. ``clean`` raises ValueError with a message a person can act on."""

    name: str
    help: str = ""
    default: Any = None

    kind = "value"

    def clean(self, value: Any) -> Any:
        raise NotImplementedError

    def read(self, value: Any) -> Any:
        """The stored value if it is valid, else the default; never raises."""
        try:
            return self.clean(value)
        except ValueError:
            return self.default

    def describe(self) -> str:
        shown = f"; default {self.default!r}" if self.default not in (None, "", {}) else ""
        return f"{self.name} ({self.kind}{shown}): {self.help}"


@dataclass(frozen=True)
class Int(Setting):
    """A whole number in [minimum, maximum]; at use time an out-of-range one is clamped into it."""

    default: int = 0
    minimum: int = 0
    maximum: int = 2**31 - 1

    @property
    def kind(self) -> str:  # type: ignore[override]
        return f"whole number {self.minimum}–{self.maximum}"

    @staticmethod
    def _number(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(f"must be a whole number, not {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,12}\s*", value):
            return int(value)
        raise ValueError(f"must be a whole number, not {value!r}"[:200])

    def clean(self, value: Any) -> int:
        number = self._number(value)
        if not self.minimum <= number <= self.maximum:
            raise ValueError(f"must be between {self.minimum} and {self.maximum}, not {number}")
        return number

    def read(self, value: Any) -> int:
        try:
            number = self._number(value)
        except ValueError:
            return self.default
        return min(max(number, self.minimum), self.maximum)


@dataclass(frozen=True)
class Text(Setting):
    """A short string; ``pattern`` (a full match) narrows it, e.g. to a header name."""

    default: str = ""
    max_length: int = 200
    pattern: str = ""
    pattern_help: str = ""

    kind = "text"

    def clean(self, value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # an id typed as a number
        if not isinstance(value, str):
            raise ValueError(f"must be text, not {type(value).__name__}")
        value = value.strip()
        if len(value) > self.max_length:
            raise ValueError(f"must be at most {self.max_length} characters")
        if value and self.pattern and not re.fullmatch(self.pattern, value):
            raise ValueError(self.pattern_help or f"must match {self.pattern}")
        return value


@dataclass(frozen=True)
class Choice(Setting):
    default: str = ""
    choices: tuple[str, ...] = ()

    @property
    def kind(self) -> str:  # type: ignore[override]
        return "one of " + ", ".join(self.choices)

    def clean(self, value: Any) -> str:
        text = value.strip().lower() if isinstance(value, str) else value
        if text not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}, not {value!r}"[:200])
        return text


@dataclass(frozen=True)
class Email(Setting):
    default: str = ""
    kind = "e-mail address"

    def clean(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("must be an e-mail address")
        try:
            EmailValidator()(value.strip())
        except ValidationError as exc:
            raise ValueError(f"{value[:80]!r} is not an e-mail address") from exc
        return value.strip()


@dataclass(frozen=True)
class Url(Setting):
    default: str = ""
    kind = "https URL"

    def clean(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("must be a URL")
        try:
            URLValidator(schemes=["https", "http"])(value.strip())
        except ValidationError as exc:
            raise ValueError(f"{value[:80]!r} is not a URL") from exc
        return value.strip().rstrip("/")


@dataclass(frozen=True)
class Map(Setting):
    """A JSON object of text keys to values of one kind (``values``); at use time bad entries drop."""

    default: dict = field(default_factory=dict)
    values: Setting = field(default_factory=lambda: Text("value"))
    keys: tuple[str, ...] = ()  # when set, the only keys allowed

    @property
    def kind(self) -> str:  # type: ignore[override]
        return f"object of {self.values.kind}"

    def clean(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise ValueError("must be a JSON object")
        cleaned = {}
        for key, item in value.items():
            key = str(key).strip()
            if not key or len(key) > 200:
                raise ValueError(f"has an empty or over-long key {key[:40]!r}")
            if self.keys and key not in self.keys:
                raise ValueError(f"key {key!r} is not one of {', '.join(self.keys)}")
            try:
                cleaned[key] = self.values.clean(item)
            except ValueError as exc:
                raise ValueError(f"[{key!r}] {exc}") from exc
        return cleaned

    def read(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            return dict(self.default)
        result = {}
        for key, item in value.items():
            try:
                result.update(self.clean({key: item}))
            except ValueError:
                continue
        return result


@dataclass(frozen=True)
class SettingsSchema:
    """The settings one provider's connections take."""

    fields: tuple[Setting, ...] = ()

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        if len(names) != len(set(names)):
            raise ValueError(f"settings declared twice: {sorted(n for n in names if names.count(n) > 1)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def get(self, name: str) -> Setting:
        return next(f for f in self.fields if f.name == name)

    def validate(self, raw: Any) -> dict[str, Any]:
        """The settings as given, cleaned; SettingsInvalid names every bad key. Defaults are not
        filled in (a stored default would no longer follow a change of the default). A null value
        means "unset"."""
        if raw in (None, ""):
            return {}
        if not isinstance(raw, Mapping):
            raise SettingsInvalid({"settings": "must be a JSON object of setting names to values"})
        known = {f.name: f for f in self.fields}
        cleaned: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for name, value in raw.items():
            setting = known.get(name)
            if setting is None:
                allowed = ", ".join(self.names) or "none"
                errors[str(name)] = f"unknown setting (this provider takes: {allowed})"
                continue
            if value is None:
                continue
            try:
                cleaned[name] = setting.clean(value)
            except ValueError as exc:
                errors[name] = str(exc)
        if errors:
            raise SettingsInvalid(errors)
        return cleaned

    def read(self, raw: Any) -> dict[str, Any]:
        """Every declared setting, from ``raw`` where usable, else its default; never raises."""
        source = raw if isinstance(raw, Mapping) else {}
        return {
            f.name: f.read(source[f.name]) if f.name in source else f.read(f.default) for f in self.fields
        }

    def describe(self) -> list[str]:
        return [f.describe() for f in self.fields]


# Signature timestamps: a check that tolerates 0 s (or a negative number) is off, one that
# tolerates an hour is a replay window. Every provider with a timestamped signature uses this range.
TOLERANCE_MIN_SECONDS = 60
TOLERANCE_MAX_SECONDS = 900


def tolerance_setting(default: int = 300) -> Int:
    return Int(
        "tolerance_seconds",
        help="How old a signed delivery may be. Clamped to the safe range at use, so 0 never turns the check off.",
        default=default,
        minimum=TOLERANCE_MIN_SECONDS,
        maximum=TOLERANCE_MAX_SECONDS,
    )
