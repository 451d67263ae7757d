"""Kubernetes label selectors, parsed and evaluated on our side.

The API server already filters the namespace watch by the selector; we parse it ourselves as well so
that a typo stops the scheduler at start (instead of an endless 400 from the watch), and so that a
namespace that is *not* selected can be told exactly which requirement it fails and how to fix it.

Stopping at start is only right if we refuse exactly what the API server refuses, so the lexer and
grammar follow the server's own (k8s.io/apimachinery v0.35 ``labels.Parse`` and the label key and
value rules of ``api/validate/content``), quirks included: only space, tab, CR and LF separate
tokens, a NUL byte where a token would start ends the selector, and ``in ()`` means "the empty
value", not an empty set. ``tests/integration/test_selector_matches_apiserver.py`` holds us to it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

_SEPARATORS = " \t\r\n"
_SYMBOLS = "=!(),<>"
_OPERATORS = ("=", "==", "!=", "in", "notin", ">", "<")
_MAX_NAME = 63
_MAX_PREFIX = 253
_INT64_MAX = 2**63 - 1
_NAME_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NAME_RULE = "letters, digits, '-', '_' or '.', starting and ending with a letter or digit"


class SelectorError(ValueError):
    """A label selector that Kubernetes would reject; the message quotes it and says what is wrong."""


@dataclass(frozen=True)
class Requirement:
    """One comma-separated clause of a selector, e.g. ``team in (a,b)``."""

    key: str
    operator: str  # one of: =, !=, in, notin, exists, !, >, <
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator in ("=", "in"):
            return present and value in self.values
        if self.operator in ("!=", "notin"):
            return not present or value not in self.values
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if not present or value is None or not _is_int(value):
            return False
        bound = int(self.values[0])
        return int(value) > bound if self.operator == ">" else int(value) < bound

    def __str__(self) -> str:
        if self.operator == "exists":
            return self.key
        if self.operator == "!":
            return f"!{self.key}"
        if self.operator in ("in", "notin"):
            return f"{self.key} {self.operator} ({','.join(self.values)})"
        return f"{self.key}{self.operator}{self.values[0]}"

    def explain(self, namespace: str, labels: Mapping[str, str]) -> tuple[str, str]:
        """Why ``labels`` fail this requirement, and the kubectl command that would satisfy it."""
        value = labels.get(self.key)
        label = f"kubectl label namespace {namespace}"
        if self.operator in ("=", "in", "exists", ">", "<"):
            wanted = self.values[0] if self.values else "<value>"
            if self.operator == ">":
                wanted = str(int(self.values[0]) + 1)
            elif self.operator == "<":
                wanted = str(int(self.values[0]) - 1)
            fix = f"{label} {self.key}={wanted}" + (" --overwrite" if value is not None else "")
            if value is None:
                what = f"label {self.key}={self.values[0]}" if self.operator == "=" else f"label {self.key}"
                return f"it lacks {what}", fix
            return f"its label {self.key}={value} does not satisfy '{self}'", fix
        return f"its label {self.key}={value} is excluded by '{self}'", f"{label} {self.key}-"


@dataclass(frozen=True)
class LabelSelector:
    """A parsed selector: every requirement must hold (Kubernetes ANDs the clauses)."""

    text: str
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def first_failure(self, labels: Mapping[str, str]) -> Requirement | None:
        return next((r for r in self.requirements if not r.matches(labels)), None)


def parse_selector(text: str) -> LabelSelector:
    """Parse ``text`` as the API server would, or raise :class:`SelectorError` quoting it.

    One deliberate difference: the server reads an empty selector as "everything"; we refuse it,
    because opting every namespace of the cluster in is never what a typo should do.
    """
    return LabelSelector(text, _Parser(text).parse())


# lexing ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "end", or the symbol itself: = == != ! ( ) , > <
    text: str
    at: int  # offset in the selector, for messages

    def __str__(self) -> str:
        return "the end of the selector" if self.kind == "end" else f"'{self.text}'"


def _tokens(text: str) -> list[_Token]:
    """Split ``text`` the way the API server's lexer does.

    Words run until a symbol, a separator or a NUL; a NUL right after a token is dropped, and a
    NUL where a token would start ends the selector (the server's reader treats byte 0 as the end).
    """
    tokens: list[_Token] = []
    pos, size = 0, len(text)
    while True:
        while pos < size and text[pos] in _SEPARATORS:
            pos += 1
        if pos == size or text[pos] == "\0":
            tokens.append(_Token("end", "", pos))
            return tokens
        start = pos
        if text[pos] in _SYMBOLS:
            pos += 2 if text[pos : pos + 2] in ("==", "!=") else 1
            kind = text[start:pos]
        else:
            while pos < size and text[pos] not in _SYMBOLS and text[pos] not in _SEPARATORS + "\0":
                pos += 1
            kind = "word"
        tokens.append(_Token(kind, text[start:pos], start))
        if pos < size and text[pos] == "\0":
            pos += 1


# parsing ---------------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the token list, one method per grammar rule."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0

    def parse(self) -> tuple[Requirement, ...]:
        if self._peek().kind == "end":
            raise SelectorError(
                f"label selector {self.text!r} is empty: it would select every namespace in the cluster; "
                "set [kubernetes_namespace_discovery] label_selector, e.g. 'airflow-enabled=true'"
            )
        requirements = [self._requirement()]
        while True:
            token = self._next()
            if token.kind == "end":
                return tuple(requirements)
            if token.kind != ",":
                self._fail(f"expected ',' or the end of the selector after '{requirements[-1]}'", token)
            if self._peek().kind not in ("word", "!"):
                self._fail("expected another requirement after ','", self._peek())
            requirements.append(self._requirement())

    def _requirement(self) -> Requirement:
        token = self._next()
        negated = token.kind == "!"
        if negated:
            token = self._next()
        if token.kind != "word":
            self._fail("expected a label key" + (" after '!'" if negated else ""), token)
        key = self._check_key(token.text)
        follows = self._peek()
        if follows.kind in ("end", ","):
            return Requirement(key, "!" if negated else "exists")
        if negated:
            self._fail(
                f"'!{key}' means 'no label {key}' and takes no operator or value; "
                f"to exclude one value write '{key}!=<value>'",
                follows,
            )
        operator = self._next()
        if operator.kind == "word" and operator.text in ("in", "notin"):
            return Requirement(key, operator.text, self._value_list(key, operator.text))
        if operator.kind not in _OPERATORS:
            self._fail(
                f"expected an operator after key '{key}' (one of {', '.join(_OPERATORS)}), "
                "or ',' before the next requirement",
                operator,
            )
        value = self._exact_value(key, operator.text)
        if operator.kind not in (">", "<"):
            self._check_value(key, value)
        elif not _is_int(value):  # a whole number is always a valid label value too
            raise SelectorError(
                f"invalid label selector {self.text!r}: '{key}{operator.kind}{value}' compares numbers, "
                f"so its value must be a whole number from 0 to {_INT64_MAX} (e.g. '{key}{operator.kind}3')"
            )
        return Requirement(key, "=" if operator.kind == "==" else operator.kind, (value,))

    def _exact_value(self, key: str, operator: str) -> str:
        """The value after =, ==, !=, > or <; none at all (``team=``) is the empty value."""
        if self._peek().kind in ("end", ","):
            return ""
        token = self._next()
        if token.kind != "word":
            self._fail(f"expected a value after '{key}{operator}'", token)
        return token.text

    def _value_list(self, key: str, operator: str) -> tuple[str, ...]:
        """``(a,b)``; an empty slot, as in ``()``, ``(a,)`` or ``(a,,b)``, is the empty value."""
        opening = self._next()
        if opening.kind != "(":
            self._fail(
                f"'{key} {operator}' needs its values in parentheses, e.g. '{key} {operator} (a,b)'", opening
            )
        values: list[str] = []
        previous = opening
        while (token := self._next()).kind != ")":
            if token.kind == ",":
                if previous.kind != "word":
                    values.append("")
            elif token.kind != "word":
                self._fail(f"expected a value, ',' or ')' in the value list of '{key} {operator}'", token)
            elif previous.kind == "word":
                self._fail(f"expected ',' or ')' between the values of '{key} {operator}'", token)
            else:
                values.append(token.text)
            previous = token
        if previous.kind != "word":  # '()' or a trailing ','
            values.append("")
        for value in values:
            self._check_value(key, value)
        return tuple(dict.fromkeys(sorted(values, key=lambda value: value == "")))

    def _check_key(self, key: str) -> str:
        """A label key: an optional DNS-subdomain prefix and '/', then a name of at most 63."""
        where = f"invalid label selector {self.text!r}: key {key!r}"
        parts = key.split("/")
        if len(parts) > 2:
            raise SelectorError(
                f"{where} has more than one '/': a key is an optional DNS subdomain prefix, '/', "
                "and a name (e.g. 'example.com/team')"
            )
        name = parts[-1]
        if len(parts) == 2:
            prefix = parts[0]
            if not prefix:
                raise SelectorError(f"{where} has an empty prefix before '/'")
            if len(prefix) > _MAX_PREFIX:
                raise SelectorError(
                    f"{where} has a prefix of {len(prefix)} characters; at most {_MAX_PREFIX} are allowed"
                )
            if not _DNS_SUBDOMAIN_RE.fullmatch(prefix):
                raise SelectorError(
                    f"{where} has prefix {prefix!r}, which is not a lowercase DNS subdomain: lowercase "
                    "letters, digits, '-' and '.', each dot-separated part starting and ending with a "
                    "letter or digit (e.g. 'example.com')"
                )
        if not name:
            raise SelectorError(f"{where} has an empty name" + (" after '/'" if len(parts) == 2 else ""))
        if len(name) > _MAX_NAME:
            raise SelectorError(
                f"{where} has a name of {len(name)} characters; at most {_MAX_NAME} are allowed"
            )
        if not _NAME_RE.fullmatch(name):
            raise SelectorError(f"{where} has name {name!r}, which must be {_NAME_RULE}")
        return key

    def _check_value(self, key: str, value: str) -> None:
        where = f"invalid label selector {self.text!r}: value {value!r} of key {key!r}"
        if len(value) > _MAX_NAME:
            raise SelectorError(f"{where} has {len(value)} characters; at most {_MAX_NAME} are allowed")
        if value and not _NAME_RE.fullmatch(value):
            raise SelectorError(f"{where} must be empty or {_NAME_RULE}")

    def _peek(self) -> _Token:
        return self.tokens[self.pos]

    def _next(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos = min(self.pos + 1, len(self.tokens) - 1)
        return token

    def _fail(self, expected: str, found: _Token) -> NoReturn:
        where = "" if found.kind == "end" else f" at character {found.at + 1}"
        raise SelectorError(f"invalid label selector {self.text!r}: {expected}, found {found}{where}")


def _is_int(value: str) -> bool:
    """What the API server accepts after ``>``/``<`` and compares with: a decimal int64, no sign."""
    return value.isascii() and value.isdigit() and int(value) <= _INT64_MAX
