"""Which spans of a run become tasks: `OTELSTREAM_SPAN_INCLUDE` / `_EXCLUDE` and `span_filter`.

Instrumentation spans (HTTP clients, databases, LLM clients) are tasks by
default; these filters hide them. A hidden span's children attach to its
nearest shown ancestor (the stream processor keeps that mapping), so the
tree a browser draws stays connected.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Iterable
from fnmatch import translate
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace import ReadableSpan

from otelstream._errors import warn_limited

if TYPE_CHECKING:
    from otelstream.hubs import Hub

SpanFilter = Callable[[ReadableSpan], bool]
"""Called with a span of a run as it starts (not the root): True shows it as a task."""

_SCOPE = "scope:"
_MAX_CACHED = 10_000


def _pattern(globs: Iterable[str]) -> re.Pattern[str] | None:
    globs = list(globs)
    return re.compile("|".join(translate(glob) for glob in globs)) if globs else None


class GlobFilter:
    """The settings' globs as a `SpanFilter`: exclude wins, then include (if any) must match.

    Verdicts are cached by (scope, name), which are few in any real program. logfire names a
    span by its template (`task:{name}`) and shows it by the rendered text (`logfire.msg`,
    as the stream does): a glob on either name matches it.
    """

    def __init__(self, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> None:
        include, exclude = list(include), list(exclude)
        self._include_names = _pattern(g for g in include if not g.startswith(_SCOPE))
        self._include_scopes = _pattern(g[len(_SCOPE) :] for g in include if g.startswith(_SCOPE))
        self._exclude_names = _pattern(g for g in exclude if not g.startswith(_SCOPE))
        self._exclude_scopes = _pattern(g[len(_SCOPE) :] for g in exclude if g.startswith(_SCOPE))
        self._including = bool(include)
        self._cache: dict[tuple[str, str, str | None], bool] = {}

    def __bool__(self) -> bool:
        return self._including or self._exclude_names is not None or bool(self._exclude_scopes)

    def __call__(self, span: ReadableSpan) -> bool:
        scope = span.instrumentation_scope
        name, rendered = span.name, None
        if "{" in name:  # a template: the task is shown, and so globbed, by its rendered text
            attributes = span.attributes
            text = attributes.get("logfire.msg") if attributes else None
            rendered = text if isinstance(text, str) else None
        key = ("" if scope is None else scope.name, name, rendered)
        shown = self._cache.get(key)
        if shown is None:
            shown = self.shows(*key)
            if len(self._cache) < _MAX_CACHED:
                self._cache[key] = shown
        return shown

    def shows(self, scope: str, name: str, rendered: str | None = None) -> bool:
        """Whether a span of `scope` named `name` (shown as `rendered`, if given) is a task."""
        names = (name,) if rendered is None else (name, rendered)
        if _match(self._exclude_scopes, scope) or any(
            _match(self._exclude_names, each) for each in names
        ):
            return False
        if not self._including:
            return True
        return _match(self._include_scopes, scope) or any(
            _match(self._include_names, each) for each in names
        )


def _match(pattern: re.Pattern[str] | None, text: str) -> bool:
    return pattern is not None and pattern.match(text) is not None


def guarded(span_filter: SpanFilter) -> SpanFilter:
    """The app's `span_filter`, which may raise: its span is then left out of the tasks (a
    filter that fails shows nothing it was not sure of), and a rate-limited warning names it."""

    def shows(span: ReadableSpan) -> bool:
        try:
            return bool(span_filter(span))
        except Exception as exc:
            warn_limited(
                "otelstream: span_filter raised %s for the span %r, which is left out of the "
                "run's tasks; fix the filter",
                type(exc).__name__,
                span.name,
            )
            return False

    return shows


def combined(globs: GlobFilter, span_filter: SpanFilter | None) -> SpanFilter | None:
    """One filter for the processor: the settings' globs and the code's callable must both show."""
    if not globs:
        return span_filter
    if span_filter is None:
        return globs
    return lambda span: globs(span) and span_filter(span)


_CODE_FILTERS: weakref.WeakKeyDictionary[Hub, SpanFilter] = weakref.WeakKeyDictionary()
"""Each hub's `span_filter`, as its stream processor was given it."""


def filter_for(hub: Hub, span_filter: SpanFilter) -> None:
    """A stream processor on `hub` shows spans by `span_filter`: so does an OTLP receiver that
    feeds the same hub, for the services' spans, whichever of the two was built first."""
    _CODE_FILTERS[hub] = span_filter


def code_filter(hub: Hub) -> SpanFilter | None:
    """The `span_filter` a stream processor on `hub` was given, if any."""
    return _CODE_FILTERS.get(hub)
