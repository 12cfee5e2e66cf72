"""A small evaluator of GitHub Actions expressions (the subset our `if:` conditions use), so a
test can decide what a job does with a given event payload instead of trusting a reading.

Follows GitHub's documented semantics: `==` compares strings case-insensitively; `&&` and
`||` return an operand; `contains(array, item)` tests membership (strings: substring,
case-insensitive); `a.*.b` maps over an array (the object filter); a missing property is
null; falsy values are false, 0, '' and null.
"""

from __future__ import annotations

import re
from typing import Any

TOKEN = re.compile(r"""\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)|"""
                   r"""(?P<op>==|!=|<=|>=|&&|\|\||[!()<>,])|(?P<name>[A-Za-z_][\w.*-]*))""")


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot parse expression at {text[pos:]!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def truthy(v: Any) -> bool:
    return v not in (False, 0, "", None) and v == v


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    return a == b


def _lookup(path: str, contexts: dict) -> Any:
    values: Any = contexts
    mapped = False
    for part in path.split("."):
        if part == "*":
            mapped = True
            values = values if isinstance(values, list) else list((values or {}).values())
            continue
        if mapped:
            values = [v.get(part) if isinstance(v, dict) else None for v in values]
        else:
            values = values.get(part) if isinstance(values, dict) else None
    return values


FUNCTIONS = {
    "contains": lambda search, item: (
        any(_equal(x, item) for x in search) if isinstance(search, list)
        else str(item).lower() in str(search or "").lower()),
    "startswith": lambda s, p: str(s or "").lower().startswith(str(p).lower()),
    "endswith": lambda s, p: str(s or "").lower().endswith(str(p).lower()),
    "always": lambda: True,
    "success": lambda: True,
    "cancelled": lambda: False,
    "failure": lambda: False,
}


def evaluate(expression: str, contexts: dict) -> Any:
    """The value of `expression` (with or without `${{ }}`) given `contexts`, e.g.
    {"github": {...}, "needs": {...}}."""
    text = expression.strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    tokens = _tokens(text)
    pos = 0

    def peek() -> tuple[str, str] | None:
        return tokens[pos] if pos < len(tokens) else None

    def take(value: str | None = None) -> tuple[str, str]:
        nonlocal pos
        tok = tokens[pos]
        if value is not None and tok[1] != value:
            raise ValueError(f"expected {value!r}, got {tok[1]!r}")
        pos += 1
        return tok

    def or_() -> Any:
        left = and_()
        while peek() == ("op", "||"):
            take()
            right = and_()
            left = left if truthy(left) else right
        return left

    def and_() -> Any:
        left = not_()
        while peek() == ("op", "&&"):
            take()
            right = not_()
            left = right if truthy(left) else left
        return left

    def not_() -> Any:
        if peek() == ("op", "!"):
            take()
            return not truthy(not_())
        return compare()

    def compare() -> Any:
        left = primary()
        tok = peek()
        if tok and tok[0] == "op" and tok[1] in ("==", "!=", "<", ">", "<=", ">="):
            op = take()[1]
            right = primary()
            if op == "==":
                return _equal(left, right)
            if op == "!=":
                return not _equal(left, right)
            return {"<": left < right, ">": left > right, "<=": left <= right,
                    ">=": left >= right}[op]
        return left

    def primary() -> Any:
        kind, value = take()
        if kind == "str":
            return value[1:-1].replace("''", "'")
        if kind == "num":
            return float(value)
        if value == "(":
            inner = or_()
            take(")")
            return inner
        if kind == "name":
            if value in ("true", "false"):
                return value == "true"
            if value == "null":
                return None
            if peek() == ("op", "("):
                take("(")
                args = []
                while peek() != ("op", ")"):
                    args.append(or_())
                    if peek() == ("op", ","):
                        take()
                take(")")
                return FUNCTIONS[value.lower()](*args)
            return _lookup(value, contexts)
        raise ValueError(f"unexpected {value!r}")

    result = or_()
    if pos != len(tokens):
        raise ValueError(f"trailing tokens in {expression!r}")
    return result
