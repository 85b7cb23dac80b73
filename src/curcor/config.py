"""Curcor's configuration: the keys, their sources and validation.

The public face of :mod:`curcor._core.config` (SPEC R-CONF). Read the
effective configuration with :func:`load_config`; every key, with its type,
default and meaning, is in :data:`KEYS`. A bad value raises
:class:`ConfigError` with one line that says what, where and what fits.
"""

from curcor._core.config import (
    BACKENDS,
    GC_MODES,
    KEYS,
    LOG_LEVELS,
    Config,
    ConfigError,
    Key,
    available_backends,
    cpu_quota,
    default_maxprocs,
    find_root,
    format_size,
    load_config,
    parse_size,
    resolve_backend,
    usable_cpus,
)

__all__ = [
    "BACKENDS",
    "GC_MODES",
    "KEYS",
    "LOG_LEVELS",
    "Config",
    "ConfigError",
    "Key",
    "available_backends",
    "cpu_quota",
    "default_maxprocs",
    "find_root",
    "format_size",
    "load_config",
    "parse_size",
    "resolve_backend",
    "usable_cpus",
]
