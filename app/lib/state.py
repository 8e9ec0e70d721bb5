"""View state kept in the URL, for the web app's pages (imported by `app/`, never by the library).

A page keeps its view (store, site, step, ...) in the URL's query parameters so that a copied link
reproduces it. The obvious way to do that breaks in Streamlit:

    wanted = st.query_params.get("store", choices[0])
    choice = st.selectbox("Store", choices, index=choices.index(wanted))  # default from the URL
    st.query_params["store"] = choice

The widget's default is computed from the URL, so each move of the widget changes its default,
hence its identity; Streamlit then treats it as a new widget and drops every second move (pick B,
then C: the page stays on B).

Here a widget instead takes a session-state key and no default. Before the widget is drawn, its
session-state value is seeded from the URL (or a fallback) only when it does not already hold a
valid value (the first run of a session, or its options changed under it), and after it the page
writes the value back to the URL. So the widget's identity never changes, every move sticks and
reaches the URL, and a link opened in a fresh session seeds the same view.

Session state is shared by all pages of the app, so the keys are namespaced by page
(`state_key`). Values in the URL are text: options are compared with them as text, so int options
(steps, sample counts) work too.

The building blocks are `seed_state` (any validity rule) and `url_state` (a list of options); the
`url_*` wrappers draw the widget and write the URL in one call. A URL value that is none of a
picker's options falls back silently, or, with `refuse=`, with a warning that says why
(`refuse_url_value`, also for URL values no widget holds, such as a map's selected cell).
`url_selection` is the `on_select` callback of a chart whose selection lives in the URL.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeAlias, TypeVar

import streamlit as st

T = TypeVar("T")
N = TypeVar("N", int, float)

Fallback: TypeAlias = T | Callable[[str | None], T]
"""A value, or a function of the URL's value (None when the URL has none) that gives it."""

Refusal: TypeAlias = str | Callable[[str], str]
"""A warning's text, or a function of the refused URL value that gives it."""


def state_key(page: str, key: str) -> str:
    """The session-state key of page `page`'s widget for URL parameter `key`."""
    return f"url-{page}-{key}"


def seed_state(
    page: str, key: str, valid: Callable[[Any], bool], initial: Callable[[str | None], Any]
) -> str:
    """The session-state key (`state_key`) of the widget for URL parameter `key`, to pass to the
    widget as `key=` (with no default). Unless the state already holds a value that `valid`
    accepts, it is set to `initial(the URL's value, or None)` first."""
    state = state_key(page, key)
    if state not in st.session_state or not valid(st.session_state[state]):
        st.session_state[state] = initial(st.query_params.get(key))
    return state


def _resolve(fallback: Fallback[T], wanted: str | None) -> T:
    return fallback(wanted) if callable(fallback) else fallback


def _target(container: Any) -> Any:
    """Where to draw a widget: `container` (a column, a sidebar, ...) or the current one."""
    return st if container is None else container


def url_state(page: str, key: str, options: Sequence[T], fallback: Fallback[T]) -> str:
    """The session-state key of a choice among `options` kept in URL parameter `key`: seeded with
    the option whose text is the URL's value, else with `fallback` (one of `options`, or a
    function of the URL's value, None when absent, giving one), unless it already holds one of
    `options`."""

    def initial(wanted: str | None) -> T:
        found = [option for option in options if str(option) == wanted]
        return found[0] if found else _resolve(fallback, wanted)

    return seed_state(page, key, lambda value: value in options, initial)


def refuse_url_value(key: str, valid: Collection[str], why: Refusal) -> str | None:
    """The value of URL parameter `key` when it is one of `valid` (texts); None when the URL
    has none, or (with a warning `why`: a text, or a function of the value giving one) when it
    has another. The warning goes to the page's main area, where the view's messages are."""
    wanted = st.query_params.get(key)
    if wanted is None or wanted in valid:
        return wanted
    st.warning(why(wanted) if callable(why) else why)
    return None


def url_selection(param: str, chart: str, encode: Callable[[list[dict]], str | None]) -> None:
    """The `on_select` callback of chart widget `chart` whose selection lives in URL parameter
    `param`: `encode(selected points)` replaces it, or drops it when that is None (nothing
    selected, or no point `encode` can use). Bind the arguments with `functools.partial`."""
    state = st.session_state.get(chart)
    points = (state or {}).get("selection", {}).get("points", []) if state else []
    value = encode(list(points))
    if value:
        st.query_params[param] = value
    else:
        st.query_params.pop(param, None)


def _choice(
    widget: str,
    label: str,
    options: Sequence[T],
    key: str,
    page: str,
    default: Fallback[T] | None,
    container: Any,
    kwargs: dict[str, Any],
    refuse: Refusal | None = None,
) -> T:
    options = list(options)
    if not options:  # nothing to choose: an empty widget, the URL left alone
        return getattr(_target(container), widget)(label, options, **kwargs)
    if refuse is not None:
        refuse_url_value(key, [str(option) for option in options], refuse)
    fallback: Fallback[T] = options[0] if default is None else default
    state = url_state(page, key, options, fallback)
    value = getattr(_target(container), widget)(label, options, key=state, **kwargs)
    st.query_params[key] = str(value)
    return value


def url_selectbox(
    label: str,
    options: Sequence[T],
    key: str,
    *,
    page: str,
    default: Fallback[T] | None = None,
    container: Any = None,
    refuse: Refusal | None = None,
    **kwargs: Any,
) -> T:
    """`st.selectbox` over `options` whose choice lives in URL parameter `key` (on `page`). A URL
    value that is none of the options gives `default` (an option, or a function of the URL's
    value, None when absent, giving one; the first option if None), silently, or with a warning
    `refuse` (a text, or a function of the refused value giving one; see `refuse_url_value`).
    `container`: where to draw it (e.g. a column); other keyword arguments go to the widget (not
    `index` or `key`)."""
    return _choice("selectbox", label, options, key, page, default, container, kwargs, refuse)


def url_select_slider(
    label: str,
    options: Sequence[T],
    key: str,
    *,
    page: str,
    default: Fallback[T] | None = None,
    container: Any = None,
    **kwargs: Any,
) -> T:
    """`st.select_slider` over `options` whose choice lives in URL parameter `key`; the rest as
    for `url_selectbox` (not `value`)."""
    return _choice("select_slider", label, options, key, page, default, container, kwargs)


def url_radio(
    label: str,
    options: Sequence[T],
    key: str,
    *,
    page: str,
    default: Fallback[T] | None = None,
    container: Any = None,
    **kwargs: Any,
) -> T:
    """`st.radio` over `options` whose choice lives in URL parameter `key`; the rest as for
    `url_selectbox` (not `index`)."""
    return _choice("radio", label, options, key, page, default, container, kwargs)


def _number(
    widget: str,
    label: str,
    key: str,
    page: str,
    kind: type[N],
    default: Fallback[N],
    min_value: N | None,
    max_value: N | None,
    container: Any,
    kwargs: dict[str, Any],
) -> N:
    def inside(value: Any) -> bool:
        return (
            type(value) is kind
            and (min_value is None or value >= min_value)
            and (max_value is None or value <= max_value)
        )

    def initial(wanted: str | None) -> N:
        try:
            value = kind(wanted)  # type: ignore[arg-type]  # None and junk: the fallback
        except (TypeError, ValueError):
            return _resolve(default, wanted)
        if value != value:  # NaN
            return _resolve(default, wanted)
        if min_value is not None:
            value = max(value, min_value)
        if max_value is not None:
            value = min(value, max_value)
        return kind(value)

    state = seed_state(page, key, inside, initial)
    bounds = {"min_value": min_value, "max_value": max_value}
    value = getattr(_target(container), widget)(label, key=state, **bounds, **kwargs)
    st.query_params[key] = str(value)
    return value


def url_number_input(
    label: str,
    key: str,
    *,
    page: str,
    default: Fallback[int],
    min_value: int | None = None,
    max_value: int | None = None,
    container: Any = None,
    **kwargs: Any,
) -> int:
    """`st.number_input` of an int kept in URL parameter `key` (on `page`). A URL integer outside
    [`min_value`, `max_value`] is clamped into it; no or an unparseable URL value gives `default`
    (an int, or a function of the URL's value, None when absent, giving one). `container` and
    other keyword arguments (e.g. `step`; not `value`) as for `url_selectbox`."""
    return _number(
        "number_input", label, key, page, int, default, min_value, max_value, container, kwargs
    )


def url_slider(
    label: str,
    key: str,
    *,
    page: str,
    min_value: N,
    max_value: N,
    default: Fallback[N],
    container: Any = None,
    **kwargs: Any,
) -> N:
    """`st.slider` of one number (an int or a float, as `min_value`) kept in URL parameter `key`;
    the URL value is clamped into the range, an unparseable one gives `default`. The rest as for
    `url_number_input` (e.g. `step`; not `value`)."""
    kind: type[N] = type(min_value)
    return _number(
        "slider", label, key, page, kind, default, min_value, max_value, container, kwargs
    )


def _text(
    widget: str,
    label: str,
    key: str,
    page: str,
    default: Fallback[str],
    container: Any,
    kwargs: dict[str, Any],
) -> str:
    def initial(wanted: str | None) -> str:
        return wanted if wanted is not None else _resolve(default, wanted)

    state = seed_state(page, key, lambda value: isinstance(value, str), initial)
    value = getattr(_target(container), widget)(label, key=state, **kwargs)
    st.query_params[key] = value
    return value


def url_text_input(
    label: str,
    key: str,
    *,
    page: str,
    default: Fallback[str],
    container: Any = None,
    **kwargs: Any,
) -> str:
    """`st.text_input` whose text lives in URL parameter `key` (on `page`): the URL's text (even
    empty) if it has one, else `default` (a string, or a function of None giving one, so an
    expensive default is only computed when needed). The rest as for `url_selectbox`."""
    return _text("text_input", label, key, page, default, container, kwargs)


def url_text_area(
    label: str,
    key: str,
    *,
    page: str,
    default: Fallback[str],
    container: Any = None,
    **kwargs: Any,
) -> str:
    """`st.text_area` whose text lives in URL parameter `key`; as `url_text_input`."""
    return _text("text_area", label, key, page, default, container, kwargs)
