"""Bootstrap step declarations: script rendering (Jinja2) and the step digest.

A step's digest = sha256(rendered script, resolved image, values at `inputs`). The Jinja2 context of a
script is `values` (the component's merged values), `cluster`, `component`, `release`, `namespace`.
Execution lives in deploy_manager.bootstrap; this module only decides *what* a step is.

Scripts come from the values repository, so they render in Jinja2's immutable sandbox: no attribute of
Python internals (`cycler.__init__.__globals__.os…` would run code in the manager's pod, which holds its
ServiceAccount token), no mutation of the values, `range` and repetition (`"x" * n`, `**`) bounded by one
budget per render, and a rendered script of at most MAX_SCRIPT_CHARS.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from deploy_manager.desired.values import canonical_json, get_path, sha256_hex
from deploy_manager.models.desired import BootstrapStep
from deploy_manager.models.errors import ConfigError

MAX_SCRIPT_CHARS = 1024 * 1024  # a Job's script; a ConfigMap holds 1 MiB
MAX_ITEMS = 100_000  # items from `range` and repetition, per render


class _Budget:
    """Items a render may still produce with `range` and `*`; one per render (a template may loop over ranges)."""

    def __init__(self) -> None:
        self.left = MAX_ITEMS

    def spend(self, n: int) -> None:
        self.left -= max(0, n)
        if self.left < 0:
            raise SecurityError(f"the script asks for more than {MAX_ITEMS} items (range, repetition)")


class _ScriptEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)  # a bound `str.format`/`format_map`, made safe by Jinja
        if wrapped is None:
            return None
        _check_format(getattr(value, "__self__", None))  # "{:>999999999}".format(1)
        return wrapped

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        budget = context.get("_budget")
        if operator == "%":
            _check_format(left)  # "%999999999d" % 1
        if operator == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise SecurityError("exponent too large in a script template")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int) and budget is not None:
                    budget.spend(len(seq) * n)
        return super().call_binop(context, operator, left, right)


def _bounded_range(budget: _Budget) -> Any:
    def bounded(*args: int) -> range:
        rng = range(*args)
        budget.spend(len(rng))
        return rng

    return bounded


MAX_WIDTH = 10_000  # widths and counts given to filters (center, indent, batch, slice) and format strings
_BIG_NUMBER = re.compile(r"\d{6,}|%\*|\{[^{}]*\{")  # big widths, `%*d`, a width given as an argument


def _bounded_filter(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def bounded(*args: Any, **kwargs: Any) -> Any:
        for arg in (*args[1:], *kwargs.values()):
            if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_WIDTH:
                raise SecurityError(f"{name}({arg}) is larger than {MAX_WIDTH}")
        return original(*args, **kwargs)

    return bounded


def _check_format(spec: Any) -> None:
    if isinstance(spec, str) and _BIG_NUMBER.search(spec):
        raise SecurityError("a format width or precision too large, or given as an argument")


_ENV = _ScriptEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
for _name in ("center", "indent", "batch", "slice", "wordwrap", "truncate", "round"):
    _ENV.filters[_name] = _bounded_filter(_name, _ENV.filters[_name])
_format = _ENV.filters["format"]


def _bounded_format(value: Any, *args: Any, **kwargs: Any) -> Any:
    _check_format(value)
    return _format(value, *args, **kwargs)


_ENV.filters["format"] = _bounded_format
_ENV.globals.pop("lipsum", None)  # lipsum(n) loops n times


def render_script(
    template: str, *, file: str, values: dict[str, Any], cluster: str, component: str, release: str, namespace: str
) -> str:
    budget = _Budget()
    try:
        out: list[str] = []
        size = 0
        chunks = _ENV.from_string(template).generate(
            values=values,
            cluster=cluster,
            component=component,
            release=release,
            namespace=namespace,
            range=_bounded_range(budget),
            _budget=budget,
        )
        for chunk in chunks:  # streamed, so an oversized script stops as soon as it is too long
            size += len(chunk)
            if size > MAX_SCRIPT_CHARS:
                raise ConfigError(f"the rendered script is longer than {MAX_SCRIPT_CHARS} characters", file=file)
            out.append(chunk)
        return "".join(out)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"template error: {exc.message}", file=file, line=exc.lineno) from exc
    except SecurityError as exc:
        raise ConfigError(f"refused by the template sandbox: {exc}", file=file) from exc
    except jinja2.TemplateError as exc:
        raise ConfigError(f"cannot render: {exc}", file=file) from exc


def resolve_image(values: dict[str, Any], image: str | None) -> str | None:
    if image is None:
        return None
    found = get_path(values, f"images.tags.{image}")
    return str(found) if found is not None else None


def step_digest(step: BootstrapStep, rendered: str, values: dict[str, Any]) -> str:
    image = resolve_image(values, step.image) or ""
    inputs = {path: get_path(values, path) for path in step.inputs}
    settings = canonical_json({"when": step.when, "always": step.always, "timeout": step.timeout})
    return sha256_hex(rendered, image, canonical_json(inputs), settings)
