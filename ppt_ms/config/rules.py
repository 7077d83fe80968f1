"""Value rules: each checks one config value and returns it normalised, or raises ConfigError
naming the key, the bad value and what is allowed."""
import difflib
import math

from ..errors import PPTMSError


class ConfigError(PPTMSError, ValueError):
    """A config file, override or value that cannot be used."""


def reject(key, value, expected):
    hint = ""
    if isinstance(value, (bool, int, float)) and "string" in expected:
        hint = " (quote it in YAML to pass it as a string)"
    raise ConfigError(f"config key '{key}': expected {expected}, "
                      f"got {value!r} ({type(value).__name__}){hint}")


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def suggestion(word, options):
    """' (did you mean 'x'?)' for the closest option, or ''."""
    word = str(word)
    same_case = [o for o in options if o.lower() == word.lower()]
    close = same_case or difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Int:
    def __init__(self, minimum=None):
        self.minimum = minimum
        self.expected = "an int" if minimum is None else f"an int >= {minimum}"

    def check(self, key, value):
        if not is_int(value) or (self.minimum is not None and value < self.minimum):
            reject(key, value, self.expected)
        return value


class Float:
    """A finite float within optional bounds; ints are widened to float."""

    def __init__(self, low=None, high=None, low_open=False, high_open=False, allow_inf=False):
        self.low, self.high = low, high
        self.low_open, self.high_open = low_open, high_open
        self.allow_inf = allow_inf
        if low is not None and high is not None:
            self.expected = (f"a float in {'(' if low_open else '['}{low}, "
                             f"{high}{')' if high_open else ']'}")
        elif low is not None:
            self.expected = f"a float {'>' if low_open else '>='} {low}"
        else:
            self.expected = "a float"

    def check(self, key, value):
        if not (is_int(value) or isinstance(value, float)):
            reject(key, value, self.expected)
        number = float(value)
        too_low = self.low is not None and (number <= self.low if self.low_open else number < self.low)
        too_high = self.high is not None and (number >= self.high if self.high_open else number > self.high)
        not_finite = math.isnan(number) or (math.isinf(number) and not self.allow_inf)
        if too_low or too_high or not_finite:
            reject(key, value, self.expected)
        return number


class Str:
    expected = "a non-empty string"

    def check(self, key, value):
        if not isinstance(value, str) or not value:
            reject(key, value, self.expected)
        return value


class Bool:
    expected = "true or false"

    def check(self, key, value):
        if not isinstance(value, bool):
            reject(key, value, self.expected)
        return value


class Choice:
    def __init__(self, *choices):
        self.choices = choices
        self.expected = "one of " + ", ".join(choices)

    def check(self, key, value):
        if not isinstance(value, str) or value not in self.choices:
            raise ConfigError(
                f"config key '{key}': got {value!r}; allowed values: "
                f"{', '.join(self.choices)}{suggestion(value, self.choices)}")
        return value


class Nullable:
    def __init__(self, rule):
        self.rule = rule
        self.expected = f"{rule.expected} or null"

    def check(self, key, value):
        if value is None:
            return None
        try:
            return self.rule.check(key, value)
        except ConfigError:
            reject(key, value, self.expected)


class Auto:
    """The word 'auto' (the value is decided at run time, e.g. from the machine) or what ``rule`` allows."""

    def __init__(self, rule):
        self.rule = rule
        self.expected = f"auto or {rule.expected}"

    def check(self, key, value):
        if value == "auto":
            return value
        try:
            return self.rule.check(key, value)
        except ConfigError:
            reject(key, value, self.expected)


class ListOf:
    """A list whose items each follow ``item``, with optional shape and order constraints.

    order: None, "strict" (strictly increasing) or "low-high" (non-decreasing pair).
    """

    def __init__(self, item, length=None, min_length=0, order=None, unique=False):
        self.item, self.length, self.min_length = item, length, min_length
        self.order, self.unique = order, unique
        size = (f" of {length} items" if length else
                f" of at least {min_length} item{'s' if min_length > 1 else ''}" if min_length else "")
        extra = {"strict": ", strictly increasing", "low-high": ", as (low, high) with low <= high",
                 None: ""}[order]
        self.expected = (f"a list{size}, each item {item.expected}{extra}"
                         f"{', without repeats' if unique else ''}")

    def check(self, key, value):
        if not isinstance(value, (list, tuple)):
            reject(key, value, self.expected)
        items = [self.item.check(f"{key}[{i}]", v) for i, v in enumerate(value)]
        pairs = list(zip(items, items[1:]))
        bad = ((self.length is not None and len(items) != self.length)
               or len(items) < self.min_length
               or (self.order == "strict" and any(a >= b for a, b in pairs))
               or (self.order == "low-high" and any(a > b for a, b in pairs))
               or (self.unique and len(set(items)) != len(items)))
        if bad:
            reject(key, list(value), self.expected)
        return items


class IntOrIntList:
    def __init__(self, minimum):
        self.one = Int(minimum)
        self.many = ListOf(self.one)
        self.expected = f"{self.one.expected} or {self.many.expected}"

    def check(self, key, value):
        if isinstance(value, (list, tuple)):
            return self.many.check(key, value)
        if not is_int(value) or value < self.one.minimum:
            reject(key, value, self.expected)
        return value
