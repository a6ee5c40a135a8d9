"""One settings mechanism for every process: pydantic-settings, `CNN_` prefix, one error type.

Each process (server, worker, CLI) defines one subclass of `ServiceSettings`; a field
``foo_bar`` is read from the environment variable ``CNN_FOO_BAR`` (a field may name another
variable with ``validation_alias``, e.g. ``NUMBA_CACHE_DIR``). Empty values count as unset, so
``CNN_X=`` in a compose file means "the default". The README's settings tables are generated
from the classes by `settings_table` and a test keeps them in step.

Values that must never be echoed (tokens, passwords) are declared with ``secret=True`` in the
field's ``json_schema_extra``; URLs are shown through `redact_url`. Neither a log line nor a
`SettingsError` message ever contains a password.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Self

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from core.redaction import redact_url

ENV_PREFIX = "CNN_"

# The environment `ServiceSettings.from_env` reads when the caller passes one explicitly (tests,
# the CLI building settings from parsed options); unset means `os.environ`.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("cnn_settings_environ", default=None)


class SettingsError(ValueError):
    """A setting holds a value that cannot be used; the message names the variable."""


class _MappingEnvSource(EnvSettingsSource):
    """The standard environment source, reading an explicit mapping instead of `os.environ`."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        environ = _ENVIRON.get()
        source = os.environ if environ is None else environ
        return parse_env_vars(
            source, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


@contextmanager
def _reading(environ: Mapping[str, str] | None) -> Iterator[None]:
    token = _ENVIRON.set(environ)
    try:
        yield
    finally:
        _ENVIRON.reset(token)


class ServiceSettings(BaseSettings):
    """Base of every process's settings: `CNN_*` variables, frozen, unknown variables ignored."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
        validate_default=True,
        populate_by_name=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Overrides passed in code win over the environment; no .env files, no secrets dir:
        # a process's configuration is its environment and nothing else (12-factor).
        return (init_settings, _MappingEnvSource(settings_cls))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Read the settings from `environ` (default `os.environ`); `overrides` win.

        Raises:
            SettingsError: a variable is invalid; the message names it and what is allowed,
                with secrets masked.
        """
        try:
            with _reading(environ):
                return cls(**overrides)
        except ValidationError as exc:
            raise SettingsError(cls._describe_errors(exc)) from None

    @classmethod
    def env_name(cls, field_name: str) -> str:
        """The environment variable a field is read from."""
        alias = cls.model_fields[field_name].validation_alias
        return alias if isinstance(alias, str) else ENV_PREFIX + field_name.upper()

    @classmethod
    def _describe_errors(cls, exc: ValidationError) -> str:
        lines = []
        for err in exc.errors():
            loc = err.get("loc") or ()
            field = str(loc[0]) if loc else ""
            if field in cls.model_fields:
                var = cls.env_name(field)
                shown = _shown(cls.model_fields[field], err.get("input"))
            else:  # a check across fields (model validator): its message names the variables
                var, shown = "settings", None
            got = f" (got {shown})" if shown is not None else ""
            message = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"{var}: {message}{got}")
        return f"invalid {cls.__name__}: " + "; ".join(lines)

    def describe(self) -> dict[str, Any]:
        """Every setting by variable name, secrets masked, URLs redacted (for the start-up log)."""
        data = self.model_dump(mode="json")
        return {
            self.env_name(name): _shown(field, data[name], keep_none=True)
            for name, field in type(self).model_fields.items()
        }


def is_secret(field: FieldInfo) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("secret"))


def _shown(field: FieldInfo, value: Any, *, keep_none: bool = False) -> Any:
    """`value` as it may appear in logs and error messages."""
    if value is None:
        return None if keep_none else "unset"
    if is_secret(field):
        return "***"
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value if keep_none else repr(value)


def settings_table(settings_cls: type[ServiceSettings]) -> str:
    """Markdown table of a settings class (variable, default, meaning) for the README."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in settings_cls.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, tuple | list):
            default = ",".join(str(item) for item in default)
        shown = "unset" if default is None else f"`{default}`"
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{settings_cls.env_name(name)}` | {shown} | {description} |")
    return "\n".join(rows)
