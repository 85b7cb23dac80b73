"""The configuration layer: every key, where its value comes from, and how a
bad value fails (SPEC R-CONF).

Sources, lowest to highest:

1. the key's default (two defaults are computed from the usable CPUs);
2. ``curcor.toml`` at the project root, or else ``[tool.curcor]`` in the
   root's ``pyproject.toml`` (the root is the nearest directory upward from
   the main file that holds either file);
3. ``GOMAXPROCS``, for ``maxprocs`` only;
4. ``CURCOR_<KEY>`` environment variables;
5. ``curcor run`` flags, ``--<key> value`` with ``-`` for ``_``.

A bad value raises :class:`ConfigError` with one line that says what is
wrong, where it came from and what is allowed; ``curcor run`` prints it as
``curcor: scheduler init panic: <message>``.

This module is on the path of every boot and of ``curcor version``, so it
imports only cheap modules at the top: ``tomllib``, ``difflib`` and
``pathlib`` are imported where they are needed, and :class:`Config` is a
hand-written frozen record because importing ``dataclasses`` alone costs
about ten milliseconds.
"""

from __future__ import annotations

import math
import os
import sys
import types

from curcor._core.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path


__all__ = [
    "BACKENDS",
    "GC_MODES",
    "KEYS",
    "LOG_LEVELS",
    "MAX_MAXPROCS",
    "Config",
    "ConfigError",
    "ConfigFileError",
    "Key",
    "available_backends",
    "cpu_quota",
    "default_maxprocs",
    "env_key",
    "find_root",
    "format_size",
    "load_config",
    "load_key",
    "parse_env",
    "parse_flag",
    "parse_size",
    "resolve_backend",
    "usable_cpus",
]

BACKENDS = ("auto", "epoll", "kqueue", "poll", "select")
GC_MODES = ("governed", "default", "off")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

# The attribute of the ``select`` module each backend needs.
_BACKEND_NEEDS = {"epoll": "epoll", "kqueue": "kqueue", "poll": "poll"}

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})

# Powers of 1024 for both spellings, as the seed uses KB/MB/GB.
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1 << 10,
    "kib": 1 << 10,
    "mb": 1 << 20,
    "mib": 1 << 20,
    "gb": 1 << 30,
    "gib": 1 << 30,
}
_UNIT_TEXT = "an integer with an optional unit B, KB, MB, GB, KiB, MiB or GiB"

# The most workers curcor runs. Go capped GOMAXPROCS at 1024 until Go 1.10;
# the same bound keeps a typo (CURCOR_MAXPROCS=99999) from spending minutes
# starting thousands of threads before failing. No machine curcor has been
# measured on comes near it; the default is lowered to it as well.
MAX_MAXPROCS = 1024

# Largest config file read (curcor.toml or pyproject.toml): real ones are a
# few kB; past this, parsing would cost seconds and gigabytes.
MAX_CONFIG_BYTES = 1 << 20

# Linux keeps 108 bytes for sun_path, one of them the terminating NUL.
_MAX_SOCKET_PATH = 107


class ConfigFileError(ConfigError):
    """The project's config file cannot be read, is not valid TOML, or holds
    a ``[tool.curcor]`` that is not a table (the file as a whole is bad,
    not one value in it).
    """


# -- origins: where a raw value came from -------------------------------------


class _EnvOrigin:
    """An environment variable; values are text."""

    typed = False

    def __init__(self, var: str) -> None:
        self.label = var

    def show(self, key: str, raw: object) -> str:
        return f"{self.label}={_quote(str(raw))}"

    def example(self, key: str, sample: object) -> str:
        return f"{self.label}={_text(sample)}"


class _FlagOrigin:
    """A ``curcor run`` flag; values are text."""

    typed = False

    def __init__(self, key: str) -> None:
        self.flag = "--" + key.replace("_", "-")
        self.label = "flag " + self.flag

    def show(self, key: str, raw: object) -> str:
        return f"{self.flag} {_quote(str(raw))}"

    def example(self, key: str, sample: object) -> str:
        return f"{self.flag} {_text(sample)}"


class _FileOrigin:
    """A TOML table; values keep their TOML types."""

    typed = True

    def __init__(self, label: str, where: str) -> None:
        self.label = label
        self.where = where

    def show(self, key: str, raw: object) -> str:
        return f"{key} = {_toml(raw)} in {self.where}"

    def example(self, key: str, sample: object) -> str:
        return f"{key} = {_toml(sample)}"


class _ArgOrigin:
    """A keyword argument of ``Config(...)``; values are Python objects."""

    typed = True
    label = "argument"

    def show(self, key: str, raw: object) -> str:
        return f"Config({key}={raw!r})"

    def example(self, key: str, sample: object) -> str:
        return f"Config({key}={sample!r})"


_Origin = _EnvOrigin | _FlagOrigin | _FileOrigin | _ArgOrigin


def _quote(text: str) -> str:
    """Quote ``text`` on one line: control characters are escaped."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        else:
            out.append(repr(char)[1:-1])
    return '"' + "".join(out) + '"'


def _text(value: object) -> str:
    """Spell a sample value as it is written in an environment variable."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _toml(value: object) -> str:
    """Spell a value as TOML would, briefly and on one line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, dict):
        return "{...}"
    if isinstance(value, list):
        return "[...]"
    return str(value)


def _kind_of(value: object) -> str:
    """Name the TOML type of a parsed value, with its article."""
    names = {bool: "a boolean", str: "a string", int: "an integer"}
    names.update({float: "a float", dict: "a table", list: "an array"})
    return names.get(type(value), "a date or time")


def _suggest(word: str, choices: tuple[str, ...] | list[str]) -> str | None:
    """The choice closest to a misspelt ``word``, if one is close."""
    import difflib

    close = difflib.get_close_matches(word.lower(), choices, n=1, cutoff=0.6)
    return close[0] if close else None


# -- the keys ------------------------------------------------------------------


class Key:
    """One configuration key: its name, type, default and meaning.

    ``default`` is None for the two keys whose default is computed from the
    usable CPUs; ``default_text`` describes every default for the docs.
    ``env`` and ``flag`` name the environment variable and the run flag.
    ``pending`` names the machinery that will act on the key when it is not
    built yet (the value is validated and recorded now, and has no effect);
    it is None for a key that acts today. ``meaning`` then ends by saying so.
    """

    __slots__ = (
        "_compute",
        "_parse",
        "allowed",
        "choices",
        "default",
        "default_text",
        "env",
        "flag",
        "maximum",
        "meaning",
        "minimum",
        "name",
        "noun",
        "pending",
        "sample",
        "type",
    )

    def __init__(self, name: str, type: str, default: object, meaning: str, **kw):
        self.name = name
        self.type = type
        self.default = default
        self.pending = kw.pop("pending", None)
        if self.pending:
            note = f"validated; takes effect with {self.pending}, not yet built"
            meaning = f"{meaning.removesuffix('.')} ({note})."
        self.meaning = meaning
        self.env = "CURCOR_" + name.upper()
        self.flag = "--" + name.replace("_", "-")
        self.default_text = kw.pop("default_text", None) or _text(default)
        self.minimum = kw.pop("minimum", None)
        self.maximum = kw.pop("maximum", None)
        self.choices = kw.pop("choices", ())
        self.noun = kw.pop("noun")
        self.allowed = kw.pop("allowed")
        self.sample = kw.pop("sample")
        self._parse = kw.pop("parse")
        self._compute = kw.pop("compute", None)
        if kw:
            raise TypeError(f"Key: unknown options {sorted(kw)}")

    def __repr__(self) -> str:
        return f"<Key {self.name}: {self.type}, default {self.default_text}>"

    @property
    def sample_text(self) -> str:
        """The sample value as it is written in a variable or a flag."""
        return _text(self.sample)

    def parse(self, raw: object, origin: _Origin) -> object:
        """Check ``raw`` from ``origin`` and return the typed value.

        Raises:
            ConfigError: the value is malformed, out of range or of the
                wrong TOML type.
        """
        return self._parse(self, raw, origin)

    def bad(self, raw: object, origin: _Origin, problem: str) -> ConfigError:
        """Build the one-line error for a bad value: what, where, what fits."""
        fix = f"{self.allowed}, e.g. {origin.example(self.name, self.sample)}"
        return ConfigError(f"{origin.show(self.name, raw)} {problem}; {fix}")

    def wrong_type(self, raw: object, origin: _Origin) -> ConfigError:
        """Build the error for a TOML value of the wrong type."""
        return self.bad(raw, origin, f"is {_kind_of(raw)}, not {self.noun}")


def _text_or_native(key: Key, raw: object, origin: _Origin, native: tuple) -> object:
    """Return text from a text source, or a value of a ``native`` TOML type."""
    if not origin.typed:
        return str(raw)
    if isinstance(raw, bool) and bool not in native:
        raise key.wrong_type(raw, origin)
    if isinstance(raw, native):
        return raw
    raise key.wrong_type(raw, origin)


def _check_range(key: Key, value: float, raw: object, origin: _Origin) -> None:
    """Raise when ``value`` is below the key's minimum or above its maximum."""
    if key.minimum is not None and value < key.minimum:
        raise key.bad(raw, origin, f"is less than {key.minimum}")
    if key.maximum is not None and value > key.maximum:
        raise key.bad(raw, origin, f"is more than {key.maximum}")


def _parse_int(key: Key, raw: object, origin: _Origin) -> int:
    """An integer within the key's range."""
    value = _text_or_native(key, raw, origin, (int,))
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if not (digits.isascii() and digits.isdigit()):
            raise key.bad(raw, origin, f"is not {key.noun}")
        try:
            value = int(text)
        except ValueError:
            # Past the interpreter's limit on digits (4300 by default).
            raise key.bad(raw, origin, "has too many digits")
    assert isinstance(value, int)
    _check_range(key, value, raw, origin)
    return value


def _parse_float(key: Key, raw: object, origin: _Origin) -> float:
    """A finite number at or above the key's minimum."""
    value = _text_or_native(key, raw, origin, (int, float))
    try:
        number = float(value.strip() if isinstance(value, str) else str(value))
    except ValueError:
        raise key.bad(raw, origin, f"is not {key.noun}")
    if not math.isfinite(number):
        raise key.bad(raw, origin, "is not a finite number")
    _check_range(key, number, raw, origin)
    return number


def _parse_bool(key: Key, raw: object, origin: _Origin) -> bool:
    """true/false, 1/0, yes/no, on/off in any case, or a TOML boolean."""
    value = _text_or_native(key, raw, origin, (bool, str, int))
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise key.bad(raw, origin, f"is not {key.noun}")


def _parse_size(key: Key, raw: object, origin: _Origin) -> int:
    """A byte count: an integer with an optional unit, or a TOML integer."""
    value = _text_or_native(key, raw, origin, (int, str))
    if isinstance(value, int):
        size = value
    else:
        try:
            size = parse_size(str(value))
        except ValueError:
            raise key.bad(raw, origin, f"is not {key.noun}")
    _check_range(key, size, raw, origin)
    return size


def _parse_choice(key: Key, raw: object, origin: _Origin) -> str:
    """One of the key's choices, in any case."""
    value = _text_or_native(key, raw, origin, (str,))
    word = str(value).strip().lower()
    if word in key.choices:
        return word
    close = _suggest(word, key.choices)
    hint = f' (did you mean "{close}"?)' if close else ""
    raise key.bad(raw, origin, f"is not {key.noun}{hint}")


def _parse_backend(key: Key, raw: object, origin: _Origin) -> str:
    """A backend name that this interpreter on this OS can use."""
    name = _parse_choice(key, raw, origin)
    if name in available_backends():
        return name
    usable = ", ".join(available_backends())
    why = f"this Python has no select.{_BACKEND_NEEDS[name]}"
    problem = f"is not available on {sys.platform} ({why})"
    fix = f"use one of {usable}, e.g. {origin.example(key.name, key.sample)}"
    raise ConfigError(f"{origin.show(key.name, raw)} {problem}; {fix}")


def _parse_path(key: Key, raw: object, origin: _Origin) -> str:
    """A Unix socket path, or empty for off."""
    path = str(_text_or_native(key, raw, origin, (str,)))
    if "\0" in path:
        raise key.bad(raw, origin, "contains a NUL character")
    size = len(os.fsencode(path))
    if size > _MAX_SOCKET_PATH:
        limit = f"{size} bytes, the limit is {_MAX_SOCKET_PATH}"
        raise key.bad(raw, origin, f"is too long for a Unix socket ({limit})")
    return path


def _cpus_plus_four(maxprocs: int) -> int:
    """The default of ``to_thread_max``: it follows maxprocs, as
    concurrent.futures follows the CPU count (blocking calls handed to
    threads grow with the work the workers do)."""
    return min(32, maxprocs + 4)


def _choices_text(choices: tuple[str, ...]) -> str:
    return "use one of " + ", ".join(choices)


def _int_allowed(minimum: int, maximum: int | None = None) -> str:
    if maximum is None:
        return f"set it to a whole number >= {minimum}"
    return f"set it to a whole number from {minimum} to {maximum}"


_KEY_LIST = (
    Key(
        "scheduler",
        "backend",
        "auto",
        "The poller backend: auto, epoll, kqueue, poll or select; auto picks "
        "epoll on Linux, kqueue on macOS and BSD, else poll, else select.",
        choices=BACKENDS,
        noun="a poller backend",
        allowed=_choices_text(BACKENDS),
        sample="auto",
        parse=_parse_backend,
    ),
    Key(
        "maxprocs",
        f"int 1..{MAX_MAXPROCS}",
        None,
        "Worker threads that run tasks (Go's GOMAXPROCS).",
        default_text="usable CPUs (CPU affinity, limited by the cgroup CPU quota)",
        minimum=1,
        maximum=MAX_MAXPROCS,
        noun="an integer",
        allowed=_int_allowed(1, MAX_MAXPROCS),
        sample=2,
        parse=_parse_int,
        compute=lambda cpus: cpus,
    ),
    Key(
        "mempool_size",
        "size",
        64 << 20,
        "Capacity of the pool of reusable I/O buffers; beyond it buffers "
        "come from the heap.",
        default_text="64MB",
        minimum=0,
        noun="a size",
        allowed="write " + _UNIT_TEXT,
        sample="64MB",
        parse=_parse_size,
    ),
    Key(
        "preempt",
        "bool",
        True,
        "Whether sysmon hands off the queue of a worker stuck in one step.",
        noun="a boolean",
        allowed="use true/false, 1/0, yes/no or on/off",
        sample=False,
        parse=_parse_bool,
    ),
    Key(
        "preempt_ms",
        "int >= 1",
        10,
        "Milliseconds one task step may run before its worker counts as stuck.",
        minimum=1,
        noun="an integer",
        allowed=_int_allowed(1),
        sample=10,
        parse=_parse_int,
    ),
    Key(
        "gc",
        "choice",
        "governed",
        "Garbage collector policy: governed (start-up objects frozen, young "
        "collections spaced by what they reclaim), default (CPython's) or off.",
        choices=GC_MODES,
        noun="a GC mode",
        allowed=_choices_text(GC_MODES),
        sample="governed",
        parse=_parse_choice,
    ),
    Key(
        "to_thread_max",
        "int >= 1",
        None,
        "Threads in the pool behind curcor.to_thread.",
        default_text="min(32, maxprocs + 4)",
        minimum=1,
        noun="an integer",
        allowed=_int_allowed(1),
        sample=8,
        parse=_parse_int,
        compute=_cpus_plus_four,
    ),
    Key(
        "spare_workers_max",
        "int >= 0",
        4,
        "Extra workers sysmon may start while every worker is stuck.",
        minimum=0,
        noun="an integer",
        allowed=_int_allowed(0),
        sample=4,
        parse=_parse_int,
    ),
    Key(
        "shutdown_grace",
        "seconds 0..86400",
        5.0,
        "Seconds tasks get for their cleanup after SIGTERM.",
        default_text="5",
        minimum=0,
        maximum=86400,  # a day; the thread joins overflow near 9.2e9 s
        noun="a number of seconds",
        allowed="set it to a number from 0 to 86400 (a day)",
        sample=5,
        parse=_parse_float,
    ),
    Key(
        "log",
        "level",
        "warning",
        "Level of the curcor logger: debug, info, warning, error or critical "
        "(applied when set; by default the logger keeps Python's settings).",
        choices=LOG_LEVELS,
        noun="a log level",
        allowed=_choices_text(LOG_LEVELS),
        sample="info",
        parse=_parse_choice,
    ),
    Key(
        "trace",
        "int ms 0..3600000",
        0,
        "Period in milliseconds of the scheduler trace on stderr; 0 is off.",
        minimum=0,
        maximum=3_600_000,  # an hour
        noun="an integer",
        allowed=_int_allowed(0, 3_600_000),
        sample=1000,
        parse=_parse_int,
    ),
    Key(
        "control",
        "path",
        "",
        "Path of the control socket read by curcor ps and top; empty is off.",
        default_text='"" (off)',
        noun="a path",
        allowed="use a short path, or empty for off",
        sample="/tmp/app.sock",
        parse=_parse_path,
    ),
)

KEYS: Mapping[str, Key] = types.MappingProxyType({k.name: k for k in _KEY_LIST})
"""Every configuration key by name, in the order of the docs."""

_FLAGS = {key.flag: key.name for key in _KEY_LIST}


# -- the record ----------------------------------------------------------------


class Config:
    """The effective configuration: one typed field per key, and ``sources``.

    An immutable record, compared and hashed by its values (not by where
    they came from). ``sources`` maps each key to where its value came
    from: ``"default"``, ``"curcor.toml (/abs/path)"``, ``"pyproject.toml
    [tool.curcor] (/abs/path)"``, ``"GOMAXPROCS"``, ``"CURCOR_MAXPROCS"``,
    ``"flag --maxprocs"`` or ``"argument"``.

    ``Config(maxprocs=2)`` checks the values given and fills the rest with
    defaults; :func:`load_config` reads every source.

    Raises:
        ConfigError: a value given is bad.
        TypeError: a keyword is not a configuration key.
    """

    __slots__ = (*KEYS, "sources")

    scheduler: str
    maxprocs: int
    mempool_size: int
    preempt: bool
    preempt_ms: int
    gc: str
    to_thread_max: int
    spare_workers_max: int
    shutdown_grace: float
    log: str
    trace: int
    control: str
    sources: Mapping[str, str]

    def __init__(self, **values: object) -> None:
        origin = _ArgOrigin()
        checked: dict[str, object] = {}
        for name, raw in values.items():
            if name not in KEYS:
                close = _suggest(name, list(KEYS))
                hint = f"; did you mean {close!r}?" if close else ""
                raise TypeError(f"Config() has no key {name!r}{hint}")
            checked[name] = KEYS[name].parse(raw, origin)
        sources = dict.fromkeys(checked, "argument")
        _fill_defaults(checked, sources, cpus=None)
        self._set(checked, sources)

    @classmethod
    def _from_checked(cls, values: dict[str, object], sources: dict) -> Config:
        """Build from values that :func:`load_config` has already checked."""
        self = cls.__new__(cls)
        self._set(values, sources)
        return self

    def _set(self, values: dict[str, object], sources: dict[str, str]) -> None:
        for name in KEYS:
            object.__setattr__(self, name, values[name])
        ordered = {name: sources[name] for name in KEYS}
        object.__setattr__(self, "sources", types.MappingProxyType(ordered))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(
            f"Config is immutable; make a changed copy with config.replace({name}=...)"
        )

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Config is immutable")

    def __iter__(self) -> Iterator[tuple[str, object]]:
        return ((name, getattr(self, name)) for name in KEYS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Config):
            return NotImplemented
        return tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self)
        return f"Config({fields})"

    def __reduce__(self) -> tuple:
        return (_rebuild, (self.as_dict(), dict(self.sources)))

    def as_dict(self) -> dict[str, object]:
        """Return the values as a plain dict, key by key in the docs' order."""
        return dict(self)

    def replace(self, **changes: object) -> Config:
        """Return a copy with ``changes`` checked and applied.

        Raises:
            ConfigError: a changed value is bad.
            TypeError: a keyword is not a configuration key.
        """
        new = Config(**changes)
        values = {**self.as_dict(), **{k: getattr(new, k) for k in changes}}
        sources = {**self.sources, **dict.fromkeys(changes, "argument")}
        return Config._from_checked(values, sources)

    @property
    def backend(self) -> str:
        """The poller backend to use: ``scheduler`` with ``auto`` resolved."""
        return resolve_backend(self.scheduler)


def _rebuild(values: dict[str, object], sources: dict[str, str]) -> Config:
    """Unpickle a :class:`Config`."""
    return Config._from_checked(values, sources)


def _fill_defaults(
    values: dict[str, object], sources: dict[str, str], cpus: int | None
) -> None:
    """Give every key missing from ``values`` its default."""
    for key in _KEY_LIST:
        if key.name in values:
            continue
        if key._compute is None:
            values[key.name] = key.default
        elif key.name != "maxprocs" and isinstance(values.get("maxprocs"), int):
            values[key.name] = key._compute(values["maxprocs"])
        else:
            if cpus is None:
                cpus = default_maxprocs()
            values[key.name] = key._compute(cpus)
        sources[key.name] = "default"


# -- sizes and backends --------------------------------------------------------


def parse_size(text: str) -> int:
    """Parse a size such as ``64MB``, ``512 KiB`` or ``1024`` into bytes.

    Units are B, KB, MB, GB (powers of 1024) and KiB, MiB, GiB (the same
    values), in any case.

    Raises:
        ValueError: ``text`` is not an integer with one of those units.
    """
    text = text.strip()
    end = len(text) - len(text.lstrip("0123456789"))
    digits, unit = text[:end], text[end:].strip().lower()
    if not digits or unit not in _UNITS:
        raise ValueError(f"{text!r} is not a size; write {_UNIT_TEXT}, e.g. 64MB")
    return int(digits) * _UNITS[unit]


def format_size(size: int) -> str:
    """Spell a byte count with the largest unit that divides it: ``64MB``."""
    for unit, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


def available_backends() -> tuple[str, ...]:
    """The backends this interpreter offers on this OS, ``auto`` first."""
    import select

    usable = [name for name, attr in _BACKEND_NEEDS.items() if hasattr(select, attr)]
    return ("auto", *usable, "select")


def resolve_backend(name: str = "auto") -> str:
    """Return the backend ``name`` stands for: ``auto`` picks the best one.

    ``auto`` is epoll where it exists (Linux), else kqueue (macOS, BSD),
    else poll, else select.

    Raises:
        ConfigError: ``name`` is unknown or not available here.
    """
    usable = available_backends()
    if name == "auto":
        for best in ("epoll", "kqueue", "poll"):
            if best in usable:
                return best
        return "select"
    parsed = KEYS["scheduler"].parse(name, _ArgOrigin())
    assert isinstance(parsed, str)
    return parsed


# -- CPUs ----------------------------------------------------------------------


def _read(path: str) -> str | None:
    """The text of a small file, or None when it cannot be read."""
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            return file.read()
    except OSError:
        return None


def _walk_up(start: str, top: str) -> Iterator[str]:
    """``start`` and its parents up to and including ``top``."""
    here = start
    while True:
        yield here
        if here == top or len(here) <= len(top):
            return
        here = os.path.dirname(here)


def _cgroup_dir(mount: str, path: str) -> str:
    """The cgroup directory of ``path`` under ``mount``.

    In a container the path of /proc/self/cgroup may name the host's cgroup,
    which does not exist under the container's mount: the mount root is
    then the container's own cgroup.
    """
    joined = os.path.normpath(os.path.join(mount, path.lstrip("/")))
    return joined if os.path.isdir(joined) else mount


def _v2_limit(mount: str, path: str) -> float | None:
    """The smallest ``cpu.max`` quota on the way from ``path`` to the root."""
    best = None
    for here in _walk_up(_cgroup_dir(mount, path), mount):
        text = _read(os.path.join(here, "cpu.max"))
        fields = text.split() if text else []
        if len(fields) != 2 or fields[0] == "max":
            continue
        best = _smaller(best, _ratio(fields[0], fields[1]))
    return best


def _v1_limit(mount: str, path: str) -> float | None:
    """The smallest CFS quota on the way from ``path`` to the mount root."""
    best = None
    for here in _walk_up(_cgroup_dir(mount, path), mount):
        quota = _read(os.path.join(here, "cpu.cfs_quota_us"))
        period = _read(os.path.join(here, "cpu.cfs_period_us"))
        if quota is None or period is None:
            continue
        best = _smaller(best, _ratio(quota.strip(), period.strip()))
    return best


def _ratio(quota: str, period: str) -> float | None:
    """quota / period in CPUs, or None for -1, zero or garbage."""
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def _smaller(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def _v1_mount(cgroup_root: str, controllers: str) -> str | None:
    """The mount of the v1 hierarchy holding the cpu controller."""
    for name in (controllers, "cpu,cpuacct", "cpuacct,cpu", "cpu"):
        mount = os.path.join(cgroup_root, name)
        if os.path.isdir(mount):
            return mount
    return None


def cpu_quota(
    cgroup_root: str = "/sys/fs/cgroup", proc_cgroup: str = "/proc/self/cgroup"
) -> float | None:
    """The CPU quota of this process's cgroup in CPUs, or None if unlimited.

    Reads cgroup v2 (``cpu.max`` in the directory named by the ``0::/path``
    line of ``proc_cgroup``) and v1 (``cpu.cfs_quota_us`` over
    ``cpu.cfs_period_us`` under the ``cpu`` controller's mount). The
    smallest limit on the way up to the root wins. Unreadable files count
    as no limit.
    """
    text = _read(proc_cgroup)
    if not text:
        return None
    best = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and not controllers:
            best = _smaller(best, _v2_limit(cgroup_root, path))
        elif "cpu" in controllers.split(","):
            mount = _v1_mount(cgroup_root, controllers)
            if mount is not None:
                best = _smaller(best, _v1_limit(mount, path))
    return best


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask, else cpu_count."""
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is not None:
        try:
            return max(1, len(getaffinity(0)))
        except OSError:
            pass
    return os.cpu_count() or 1


def default_maxprocs(
    cgroup_root: str = "/sys/fs/cgroup", proc_cgroup: str = "/proc/self/cgroup"
) -> int:
    """The default of ``maxprocs``: usable CPUs, limited by the CPU quota.

    A fractional quota is rounded up (1.5 CPUs gives 2 workers); the result
    is at least 1 and at most :data:`MAX_MAXPROCS`.
    """
    cpus = usable_cpus()
    quota = cpu_quota(cgroup_root, proc_cgroup)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, min(cpus, MAX_MAXPROCS))


# -- sources -------------------------------------------------------------------


def _find_root_dir(start: str) -> str | None:
    """The nearest directory from ``start`` upward with a config file."""
    here = os.path.abspath(start)
    while True:
        for name in ("curcor.toml", "pyproject.toml"):
            if os.path.lexists(os.path.join(here, name)):
                return here  # (one that is not a file fails in _file_layer)
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def find_root(start: Path | str) -> Path | None:
    """The project root: the nearest directory from ``start`` upward that
    holds ``curcor.toml`` or ``pyproject.toml``, or None.
    """
    from pathlib import Path

    found = _find_root_dir(os.fspath(start))
    return None if found is None else Path(found)


def _main_dir() -> str:
    """The directory of the main module's file, else the current one."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return os.path.dirname(os.path.abspath(path)) if path else os.getcwd()


def _load_toml(path: str) -> dict:
    """Parse a TOML file.

    Raises:
        ConfigFileError: the file cannot be read or is not valid TOML.
    """
    import tomllib

    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > MAX_CONFIG_BYTES:
                raise ConfigFileError(
                    f"{path} is {size:,} bytes; a config file over "
                    f"{MAX_CONFIG_BYTES:,} bytes is refused (settings are a "
                    "few short keys such as maxprocs = 2)"
                )
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        detail = str(exc).replace("\n", " ")
        raise ConfigFileError(
            f"{path} is not valid TOML: {detail}; fix the syntax there "
            f"(keys look like maxprocs = 2)"
        )
    except UnicodeDecodeError:
        raise ConfigFileError(f"{path} is not UTF-8 text; save it as UTF-8")
    except RecursionError:
        raise ConfigFileError(
            f"{path} nests arrays or tables too deeply to read; flatten it "
            "(settings are plain keys such as maxprocs = 2)"
        ) from None
    except OSError as exc:
        raise ConfigFileError(
            f"cannot read {path}: {exc.strerror}; make it readable or remove it"
        )


def _config_file_at(path: str) -> bool:
    """Whether a config file is at ``path``.

    Raises:
        ConfigFileError: something is there but it is not a readable regular
            file (a directory, a broken symlink, a FIFO): silently booting
            on defaults would hide it.
    """
    if not os.path.lexists(path):
        return False
    if os.path.isfile(path):
        return True
    if os.path.isdir(path):
        kind = "a directory"
    elif not os.path.exists(path):
        kind = "a broken symbolic link"
    else:
        kind = "not a regular file"
    raise ConfigFileError(
        f"{path} is {kind}; curcor reads its settings from that name: make it "
        "a TOML file or remove it"
    )


def _file_layer(root: str) -> tuple[dict, _FileOrigin] | None:
    """The table of settings at ``root`` and its origin, or None.

    ``curcor.toml`` wins over ``[tool.curcor]`` in ``pyproject.toml``.

    Raises:
        ConfigFileError: a file is not valid TOML or ``[tool.curcor]`` is
            not a table.
    """
    path = os.path.join(root, "curcor.toml")
    if _config_file_at(path):
        return _load_toml(path), _FileOrigin(f"curcor.toml ({path})", path)
    path = os.path.join(root, "pyproject.toml")
    if not _config_file_at(path):
        return None
    tool = _load_toml(path).get("tool")
    table = tool.get("curcor") if isinstance(tool, dict) else None
    if table is None:
        return None
    where = f"[tool.curcor] of {path}"
    if not isinstance(table, dict):
        raise ConfigFileError(
            f"tool.curcor = {_toml(table)} in {path} is {_kind_of(table)}, "
            f"not a table; write a [tool.curcor] section with keys such as "
            f"maxprocs = 2"
        )
    return table, _FileOrigin(f"pyproject.toml [tool.curcor] ({path})", where)


def _unknown_key(name: str, where: str) -> ConfigError:
    """The error for a key of a config file that is not a known key."""
    close = _suggest(name, list(KEYS))
    hint = f' (did you mean "{close}"?)' if close else ""
    known = ", ".join(KEYS)
    return ConfigError(
        f"unknown key {_quote(name)} in {where}{hint}; known keys: {known}"
    )


def env_key(name: str) -> str | None:
    """The key an environment variable sets (``GOMAXPROCS`` included), or None."""
    if name == "GOMAXPROCS":
        return "maxprocs"
    if name.startswith("CURCOR_"):
        key = name[len("CURCOR_") :].lower()
        if key in KEYS and KEYS[key].env == name:
            return key
    return None


def parse_env(name: str, text: str) -> object:
    """Check the value of the environment variable ``name`` for its key.

    Raises:
        ConfigError: ``text`` is bad for the key.
        KeyError: ``name`` sets no key (see :func:`env_key`).
    """
    key = env_key(name)
    if key is None:
        raise KeyError(name)
    return KEYS[key].parse(text, _EnvOrigin(name))


def parse_flag(name: str, text: str) -> object:
    """Check ``text`` given to the ``curcor run`` flag of key ``name``.

    Raises:
        ConfigError: ``text`` is bad for the key.
        KeyError: ``name`` is not a key.
    """
    return KEYS[name].parse(text, _FlagOrigin(name))


def _flag_key(flag: str) -> str:
    """The key a run flag sets: ``--preempt-ms`` or ``preempt_ms``.

    Raises:
        ConfigError: the flag names no key.
    """
    name = flag.lstrip("-").replace("-", "_")
    if name in KEYS:
        return name
    shown = "--" + flag.lstrip("-")
    close = _suggest(shown, list(_FLAGS))
    hint = f" (did you mean {close}?)" if close else ""
    raise ConfigError(
        f"unknown flag {shown}{hint}; the flags of curcor run are {', '.join(_FLAGS)}"
    )


def load_config(
    *,
    root: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, str] | None = None,
    start: Path | str | None = None,
) -> Config:
    """Read every source and return the effective :class:`Config`.

    Args:
        root: the project root whose ``curcor.toml`` (or ``pyproject.toml``
            ``[tool.curcor]``) is read. When None it is found with
            :func:`find_root` from ``start``, which defaults to the main
            module's directory (the current directory without one).
        env: the environment; ``os.environ`` when None. An empty variable
            counts as unset, except ``CURCOR_CONTROL`` (empty is off).
        flags: ``curcor run`` flags by key (``maxprocs`` or ``--maxprocs``),
            values as text.
        start: where the search for the root begins when ``root`` is None.

    Raises:
        ConfigError: a value, a file or a flag is bad; the message says
            what, where it came from and what is allowed.
    """
    values, sources = _gather(root, env, flags, start, only=None)
    _fill_defaults(values, sources, cpus=None)
    return Config._from_checked(values, sources)


def load_key(
    name: str,
    *,
    root: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    start: Path | str | None = None,
    skip_file: bool = False,
) -> tuple[object, str]:
    """Read one key as :func:`load_config` would; return (value, source).

    The other keys are not checked, so a bad value elsewhere does not hide
    this one (``curcor doctor`` reports each key in its own row). The
    arguments are those of :func:`load_config`; ``skip_file`` leaves the
    project's file out.

    Raises:
        ConfigFileError: the project's file as a whole is bad.
        ConfigError: the key's own value is bad.
        KeyError: ``name`` is not a key.
    """
    if name not in KEYS:
        raise KeyError(name)
    values, sources = _gather(
        root, env, None, start, only=name, read_file=not skip_file
    )
    _fill_defaults(values, sources, cpus=None)
    return values[name], sources[name]


def _gather(
    root: Path | str | None,
    env: Mapping[str, str] | None,
    flags: Mapping[str, str] | None,
    start: Path | str | None,
    only: str | None,
    read_file: bool = True,
) -> tuple[dict[str, object], dict[str, str]]:
    """Check the values every source sets: of every key, or of ``only``.

    Raises:
        ConfigError: a value, a file or a flag is bad.
    """
    values: dict[str, object] = {}
    sources: dict[str, str] = {}

    # Stage 1: the project's file.
    if root is None and read_file:
        root = _find_root_dir(os.fspath(start) if start else _main_dir())
    if root is not None and read_file:
        _apply_file(os.path.abspath(os.fspath(root)), values, sources, only)

    # Stage 2: the environment, GOMAXPROCS below CURCOR_MAXPROCS.
    environ = os.environ if env is None else env
    for var in ("GOMAXPROCS", *(key.env for key in _KEY_LIST)):
        text = environ.get(var)
        if text is None or (text == "" and var != "CURCOR_CONTROL"):
            continue
        key = env_key(var)
        assert key is not None
        if only is not None and key != only:
            continue
        values[key] = parse_env(var, text)
        sources[key] = var

    # Stage 3: the flags of curcor run.
    for flag, text in (flags or {}).items():
        name = _flag_key(flag)
        if only is not None and name != only:
            continue
        origin = _FlagOrigin(name)
        values[name] = KEYS[name].parse(text, origin)
        sources[name] = origin.label
    return values, sources


def _apply_file(root: str, values: dict, sources: dict, only: str | None) -> None:
    """Take the settings of the file at ``root`` into ``values``: every key,
    or only the key ``only`` (other keys, known or not, are then skipped).

    Raises:
        ConfigError: the file is bad.
    """
    layer = _file_layer(root)
    if layer is None:
        return
    table, origin = layer
    for name, raw in table.items():
        if only is not None and name != only:
            continue
        if name not in KEYS:
            raise _unknown_key(name, origin.where)
        values[name] = KEYS[name].parse(raw, origin)
        sources[name] = origin.label
