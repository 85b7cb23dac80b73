"""The pytest plugin: ``async def`` tests and fixtures run on curcor.

Every ``async def`` test runs in its own runtime with a ``FakeClock``, so
``sleep`` and timeouts take no real time. Mark a test to change that::

    @pytest.mark.curcor(clock="real", maxprocs=2, seed=7)

``seed`` shuffles the run queues (a different legal interleaving per seed);
``--curcor-seed N`` sets it for every test. Async fixtures (``async def`` or
async generators, function scope) are set up inside the test's runtime,
before the test, and torn down after it in reverse order.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest


class _AsyncFixture:
    """A placeholder pytest holds for an async fixture until the test runs."""

    def __init__(self, func: Any, kwargs: dict[str, Any], name: str) -> None:
        self.func = func
        self.kwargs = kwargs
        self.name = name


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("curcor")
    group.addoption(
        "--curcor-seed",
        type=int,
        default=None,
        help="shuffle curcor run queues with this seed in every async test",
    )


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers",
        "curcor(clock='fake'|'real', maxprocs=N, seed=N): how to run an async "
        "test on curcor",
    )


def _is_async(func: Any) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(fixturedef: Any, request: Any) -> Any:
    """Async fixtures become placeholders resolved inside the test's runtime."""
    func = fixturedef.func
    if not _is_async(func):
        return None
    if fixturedef.scope != "function":
        raise pytest.UsageError(
            f"async fixture {fixturedef.argname!r} has scope "
            f"{fixturedef.scope!r}; curcor runs each test in its own runtime, "
            "so async fixtures must be function-scoped"
        )
    kwargs = {name: request.getfixturevalue(name) for name in fixturedef.argnames}
    value = _AsyncFixture(func, kwargs, fixturedef.argname)
    key = fixturedef.cache_key(request)
    fixturedef.cached_result = (value, key, None)
    return value


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: Any) -> Any:
    """Run an ``async def`` test (and its async fixtures) on curcor."""
    func = pyfuncitem.obj
    if not inspect.iscoroutinefunction(func):
        if any(isinstance(v, _AsyncFixture) for v in pyfuncitem.funcargs.values()):
            raise pytest.UsageError(
                f"{pyfuncitem.name} is a plain function but uses async fixtures; "
                "make the test `async def`"
            )
        return None
    import curcor
    from curcor.config import load_config
    from curcor.testing import FakeClock

    marker = pyfuncitem.get_closest_marker("curcor")
    opts = _marker_options(marker)
    clock = None if opts.get("clock", "fake") == "real" else FakeClock()
    seed = opts.get("seed", pyfuncitem.config.getoption("--curcor-seed"))
    overrides = {}
    if "maxprocs" in opts:
        overrides["maxprocs"] = str(opts["maxprocs"])
    config = load_config(env={}, flags=overrides)
    argnames = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in argnames}
    curcor.run(
        _run_test(func, kwargs),
        config=config,
        clock=clock,
        seed=seed,
        spread=opts.get("spread"),
    )
    return True


_MARKER_KEYS = {"clock", "maxprocs", "seed", "spread"}


def _marker_options(marker: Any) -> dict[str, Any]:
    """The ``@pytest.mark.curcor(...)`` options, checked."""
    if marker is None:
        return {}
    opts = dict(marker.kwargs)
    if marker.args:
        raise pytest.UsageError(
            "@pytest.mark.curcor takes keywords only, e.g. "
            "@pytest.mark.curcor(clock='real', maxprocs=2, seed=7)"
        )
    unknown = set(opts) - _MARKER_KEYS
    if unknown:
        raise pytest.UsageError(
            f"@pytest.mark.curcor got unknown option(s) {sorted(unknown)}; "
            f"known: {sorted(_MARKER_KEYS)}"
        )
    if opts.get("clock", "fake") not in ("fake", "real"):
        raise pytest.UsageError(
            f"@pytest.mark.curcor(clock={opts['clock']!r}): use 'fake' or 'real'"
        )
    for key in ("maxprocs", "seed"):
        value = opts.get(key)
        if value is not None and (type(value) is not int or value < 0):
            raise pytest.UsageError(
                f"@pytest.mark.curcor({key}={value!r}): use a whole number"
            )
    return opts


async def _run_test(func: Any, kwargs: dict[str, Any]) -> None:
    """Set up async fixtures, run the test, tear down in reverse order."""
    teardowns: list[Any] = []
    resolved: dict[int, Any] = {}
    try:
        values = {k: await _resolve(v, resolved, teardowns) for k, v in kwargs.items()}
        await func(**values)
    finally:
        for agen, name in reversed(teardowns):
            try:
                await agen.__anext__()
            except StopAsyncIteration:
                continue
            raise RuntimeError(f"async fixture {name!r} yielded more than once")


async def _resolve(value: Any, resolved: dict[int, Any], teardowns: list[Any]) -> Any:
    if not isinstance(value, _AsyncFixture):
        return value
    if id(value) in resolved:
        return resolved[id(value)]
    kwargs = {
        k: await _resolve(v, resolved, teardowns) for k, v in value.kwargs.items()
    }
    if inspect.isasyncgenfunction(value.func):
        agen = value.func(**kwargs)
        result = await agen.__anext__()
        teardowns.append((agen, value.name))
    else:
        result = await value.func(**kwargs)
    resolved[id(value)] = result
    return result
