"""Declared parameter constraints, checked before any heavy step.

Modelled on scikit-learn's ``_parameter_constraints`` (an estimator declares, per
parameter, the values it accepts; ``fit`` checks them all first), with two differences
that suit the package's users: a violation raises :class:`stemseg.errors.StemsegValueError`
(a ``ValueError``) naming the parameter, the allowed values, the value given and -- where the
estimator gives one -- the fix; and whole-number floats (``2.0``, e.g. from a slider) count
as whole numbers where noted. Imports nothing of the package but :mod:`stemseg.errors`.

Examples
--------
>>> constraints = {"bin": [Whole(1)], "scaler": [Options("robust", "standard"), None]}
>>> check_params({"bin": 2, "scaler": None}, constraints)
>>> check_params({"bin": 0, "scaler": None}, constraints)
Traceback (most recent call last):
...
stemseg.errors.StemsegValueError: bin must be a whole number >= 1; got 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

from .errors import StemsegValueError

__all__ = ["Whole", "Number", "Options", "Boolean", "Instance", "Anything", "check_params"]


class Whole:
    """A whole number in ``[low, high]`` (either end None = open); bools are refused.

    ``accept_float=True`` also accepts floats with no fractional part (``2.0``).
    """

    def __init__(self, low: int | None = None, high: int | None = None, *,
                 accept_float: bool = False) -> None:
        self.low, self.high, self.accept_float = low, high, accept_float

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if not isinstance(value, Integral):
            if not (self.accept_float and isinstance(value, Real) and math.isfinite(value)
                    and float(value).is_integer()):
                return False
        return ((self.low is None or value >= self.low)
                and (self.high is None or value <= self.high))

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"a whole number from {self.low} to {self.high}"
        if self.low is not None:
            return f"a whole number >= {self.low}"
        if self.high is not None:
            return f"a whole number <= {self.high}"
        return "a whole number"


class Number:
    """A finite real number with ``low < value`` (or ``<=`` when ``closed_low``) and
    ``value <= high``; bools are refused."""

    def __init__(self, low: float | None = None, high: float | None = None, *,
                 closed_low: bool = False) -> None:
        self.low, self.high, self.closed_low = low, high, closed_low

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low
                                     or (value == self.low and not self.closed_low)):
            return False
        return self.high is None or value <= self.high

    def describe(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>=' if self.closed_low else '>'} {self.low}")
        if self.high is not None:
            parts.append(f"<= {self.high}")
        if parts == ["> 0"]:
            return "a positive number"
        return "a number" + (" " + " and ".join(parts) if parts else "")


class Options:
    """One of the given values (compared with ``==``)."""

    def __init__(self, *options: Any) -> None:
        self.options = options

    def accepts(self, value: Any) -> bool:
        for option in self.options:
            # same kind of value (np.str_ counts as str; True is not the option 1)
            if isinstance(value, bool) != isinstance(option, bool) \
                    or not isinstance(value, type(option)):
                continue
            try:
                if bool(value == option):
                    return True
            except (TypeError, ValueError):  # e.g. an array compared elementwise
                return False
        return False

    def describe(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)


class Boolean:
    """True or False (NumPy bools included)."""

    def accepts(self, value: Any) -> bool:
        import numpy as np

        return isinstance(value, (bool, np.bool_))

    def describe(self) -> str:
        return "True or False"


class Instance:
    """An instance of one of the given types (named in messages by ``what``)."""

    def __init__(self, *types: type, what: str) -> None:
        self.types, self.what = types, what

    def accepts(self, value: Any) -> bool:
        return isinstance(value, self.types)

    def describe(self) -> str:
        return self.what


class Anything:
    """Any value (checked later by the stage that uses it); documents the parameter."""

    def __init__(self, what: str = "any value") -> None:
        self.what = what

    def accepts(self, value: Any) -> bool:
        return True

    def describe(self) -> str:
        return self.what


def _describe(allowed: list[Any]) -> str:
    words = ["None" if a is None else a.describe() for a in allowed]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def check_params(params: Mapping[str, Any], constraints: Mapping[str, list[Any]],
                 hints: Mapping[str, str] | None = None) -> None:
    """Check every parameter against its declared constraints, in declaration order.

    Parameters
    ----------
    params : mapping
        Parameter name -> value (e.g. ``estimator.get_params()``).
    constraints : mapping
        Parameter name -> list of accepted kinds (:class:`Whole`, :class:`Number`,
        :class:`Options`, :class:`Boolean`, :class:`Anything`, or None for the value None).
        A parameter without constraints is not checked.
    hints : mapping, optional
        Parameter name -> a sentence on how to choose a good value, added to the message.

    Raises
    ------
    StemsegValueError
        The first parameter whose value no constraint accepts; the message names it, says
        what is allowed and what was given, and adds its hint.
    """
    hints = hints or {}
    for name, allowed in constraints.items():
        if name not in params:
            continue
        value = params[name]
        if any(value is None if a is None else a.accepts(value) for a in allowed):
            continue
        hint = hints.get(name)
        raise StemsegValueError(
            f"{name} must be {_describe(allowed)}; got {value!r}." + (f" {hint}" if hint else ""))
