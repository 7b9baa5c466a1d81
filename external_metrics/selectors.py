"""Kubernetes label selectors (the `labelSelector` query parameter): parsing and matching.

Grammar as in Kubernetes: comma-separated requirements, each one of
`key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (v1,v2)`, `key notin (v1,v2)`,
`key>N`, `key<N`. Keys may carry a DNS-subdomain prefix (`nvidia.com/dynamo-component`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_SELECTOR_LENGTH = 4096
MAX_REQUIREMENTS = 64

_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_INT = re.compile(r"^[+-]?\d+$")


class SelectorError(ValueError):
    """A malformed selector; the message says where and why."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        has = self.key in labels
        v = labels.get(self.key)
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        if self.op in ("=", "in"):
            return has and v in self.values
        if self.op in ("!=", "notin"):
            return not has or v not in self.values
        if not has or not _INT.match(v or ""):
            return False
        n, bound = int(v), int(self.values[0])
        return n > bound if self.op == "gt" else n < bound

    def __str__(self) -> str:
        if self.op == "exists":
            return self.key
        if self.op == "!":
            return f"!{self.key}"
        if self.op in ("in", "notin"):
            return f"{self.key} {self.op} ({','.join(self.values)})"
        sym = {"gt": ">", "lt": "<"}.get(self.op, self.op)
        return f"{self.key}{sym}{self.values[0]}"


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...] = field(default_factory=tuple)

    def matches(self, labels: dict[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def equalities(self) -> dict[str, str]:
        """Keys pinned to exactly one value (`k=v`, `k in (v)`), for index lookups."""
        return {r.key: r.values[0] for r in self.requirements if r.op in ("=", "in") and len(r.values) == 1}

    def __bool__(self) -> bool:
        return bool(self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = Selector()


def validate_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if "/" in key and not prefix:
        raise SelectorError(f"invalid label key {key!r}: empty prefix before '/'")
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        raise SelectorError(f"invalid label key {key!r}: prefix must be a DNS subdomain (lower case, at most 253 characters)")
    if not name or len(name) > 63 or not _NAME.match(name):
        raise SelectorError(
            f"invalid label key {key!r}: name must be 1-63 characters, alphanumeric at both ends, "
            "with '-', '_' or '.' inside")


def validate_value(value: str) -> None:
    if value and (len(value) > 63 or not _NAME.match(value)):
        raise SelectorError(
            f"invalid label value {value!r}: at most 63 characters, alphanumeric at both ends, "
            "with '-', '_' or '.' inside")


_TOKEN = re.compile(r"\s*(==|!=|=|\(|\)|,|!|>|<|[^\s=!(),<>]+)")


def _tokens(text: str) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise SelectorError(f"unexpected character at position {pos}: {text[pos:pos + 10]!r}")
        out.append((m.group(1), m.start(1)))
        pos = m.end()
    return out


def parse(text: str | None) -> Selector:
    """Parse a selector string; empty or None selects everything."""
    if text is None or not text.strip():
        return EVERYTHING
    if len(text) > MAX_SELECTOR_LENGTH:
        raise SelectorError(f"selector is {len(text)} characters long; the limit is {MAX_SELECTOR_LENGTH}")
    toks = _tokens(text)
    i = 0
    reqs: list[Requirement] = []

    def peek() -> tuple[str, int] | None:
        return toks[i] if i < len(toks) else None

    def expect_word(what: str) -> str:
        nonlocal i
        t = peek()
        if t is None or t[0] in ("==", "!=", "=", "(", ")", ",", "!", ">", "<"):
            where = f"at position {t[1]} (found {t[0]!r})" if t else "at the end"
            raise SelectorError(f"expected {what} {where} in {text!r}")
        i += 1
        return t[0]

    while True:
        t = peek()
        if t is None:
            raise SelectorError(f"expected a requirement at the end of {text!r}")
        if t[0] == "!":
            i += 1
            key = expect_word("a label key after '!'")
            validate_key(key)
            reqs.append(Requirement(key, "!"))
        else:
            key = expect_word("a label key")
            validate_key(key)
            t = peek()
            if t is None or t[0] == ",":
                reqs.append(Requirement(key, "exists"))
            elif t[0] in ("=", "==", "!="):
                i += 1
                nt = peek()
                if nt is None or nt[0] == ",":  # `key=` selects the empty value
                    value = ""
                else:
                    value = expect_word(f"a value after {t[0]!r}")
                validate_value(value)
                reqs.append(Requirement(key, "!=" if t[0] == "!=" else "=", (value,)))
            elif t[0] in (">", "<"):
                i += 1
                value = expect_word(f"an integer after {t[0]!r}")
                if not _INT.match(value):
                    raise SelectorError(f"{key}{t[0]}{value}: {value!r} is not an integer")
                reqs.append(Requirement(key, "gt" if t[0] == ">" else "lt", (str(int(value)),)))
            elif t[0] in ("in", "notin"):
                op = t[0]
                i += 1
                nt = peek()
                if nt is None or nt[0] != "(":
                    raise SelectorError(f"expected '(' after {key!r} {op} in {text!r}")
                i += 1
                values: list[str] = []
                while True:
                    nt = peek()
                    if nt is None:
                        raise SelectorError(f"missing ')' in {text!r}")
                    if nt[0] == ")" and not values:
                        raise SelectorError(f"{key} {op} (): at least one value is required")
                    if nt[0] in (",", ")"):
                        value = ""
                    else:
                        value = expect_word("a value")
                    validate_value(value)
                    values.append(value)
                    nt = peek()
                    if nt is None:
                        raise SelectorError(f"missing ')' in {text!r}")
                    i += 1
                    if nt[0] == ")":
                        break
                    if nt[0] != ",":
                        raise SelectorError(f"expected ',' or ')' at position {nt[1]} in {text!r}")
                reqs.append(Requirement(key, op, tuple(values)))
            else:
                raise SelectorError(
                    f"unexpected {t[0]!r} at position {t[1]} after key {key!r}; "
                    "expected '=', '==', '!=', 'in', 'notin', '>', '<' or ','")
        if len(reqs) > MAX_REQUIREMENTS:
            raise SelectorError(f"more than {MAX_REQUIREMENTS} requirements")
        t = peek()
        if t is None:
            break
        if t[0] != ",":
            raise SelectorError(f"expected ',' at position {t[1]} (found {t[0]!r}) in {text!r}")
        i += 1
    return Selector(tuple(reqs))
