"""A SOQL subset: tokenizer and recursive-descent parser producing an immutable AST.

Grammar (keywords case-insensitive)::

    query     := SELECT items FROM name [WHERE cond] [ORDER BY order (, order)*]
                 [LIMIT int] [OFFSET int]
    items     := item (, item)*
    item      := COUNT ( ) | path | ( query )        -- a subquery names a relationship
    cond      := unary ((AND unary)* | (OR unary)*)  -- mixing AND and OR needs ( )
    unary     := NOT unary | ( cond ) | path op value | path [NOT] IN ( value, ... )
                 | path LIKE string
    path      := name (. name)*
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal as TypingLiteral

from salesforce.emulator.errors import ApiError


class SoqlError(ApiError):
    """A query the API refuses: MALFORMED_QUERY, INVALID_FIELD or INVALID_TYPE (400)."""

    def __init__(self, message: str, code: str = "MALFORMED_QUERY") -> None:
        super().__init__(400, code, message)


LiteralKind = TypingLiteral["string", "number", "boolean", "null", "date", "datetime"]


@dataclass(frozen=True)
class Field:
    """A field path: ``Name`` or ``Product2.ProductCode``."""

    path: tuple[str, ...]


@dataclass(frozen=True)
class Value:
    """A literal; ``value`` is str, Decimal, bool or None (dates stay as their text)."""

    kind: LiteralKind
    value: str | Decimal | bool | None


@dataclass(frozen=True)
class Comparison:
    """``field op value``."""

    field: Field
    op: str
    value: Value


@dataclass(frozen=True)
class In:
    """``field [NOT] IN (values)``."""

    field: Field
    values: tuple[Value, ...]
    negated: bool


@dataclass(frozen=True)
class Like:
    """``field LIKE 'pattern'``."""

    field: Field
    pattern: str


@dataclass(frozen=True)
class And:
    """All of ``items``."""

    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Or:
    """Any of ``items``."""

    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    """Negation."""

    item: Condition


Condition = Comparison | In | Like | And | Or | Not


@dataclass(frozen=True)
class OrderBy:
    """One ``ORDER BY`` key; ``nulls_last`` None means the default for the direction."""

    field: Field
    descending: bool = False
    nulls_last: bool | None = None


@dataclass(frozen=True)
class Count:
    """``COUNT()``."""


@dataclass(frozen=True)
class Query:
    """A parsed SELECT (also used for subqueries, where ``sobject`` is a relationship)."""

    items: tuple[Field | Count | Query, ...]
    sobject: str
    where: Condition | None = None
    order_by: tuple[OrderBy, ...] = ()
    limit: int | None = None
    offset: int | None = None


@dataclass(frozen=True)
class Token:
    """A lexical token; ``kind`` is name, string, number, date, datetime, op or punct."""

    kind: str
    text: str
    pos: int


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>[+-]?\d+(?:\.\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>')
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),.])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", '"': '"', "'": "'"}
_ESCAPES.update({"\\": "\\", "%": "\\%", "_": "\\_"})


def _read_string(text: str, start: int) -> tuple[str, int]:
    out: list[str] = []
    i = start
    while i < len(text):
        char = text[i]
        if char == "\\":
            if i + 1 >= len(text) or text[i + 1] not in _ESCAPES:
                raise SoqlError(f"Invalid string literal escape at position {i}")
            out.append(_ESCAPES[text[i + 1]])
            i += 2
        elif char == "'":
            return "".join(out), i + 1
        else:
            out.append(char)
            i += 1
    raise SoqlError("unexpected end of query: unterminated string literal")


def tokenize(text: str) -> list[Token]:
    """Split SOQL text into tokens."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.lastgroup is None:
            raise SoqlError(f"unexpected token: '{text[pos : pos + 20]}'")
        kind = match.lastgroup
        if kind == "string":
            value, pos = _read_string(text, match.end())
            tokens.append(Token("string", value, match.start()))
            continue
        if kind != "ws":
            tokens.append(Token(kind, match.group(), match.start()))
        pos = match.end()
    return tokens


_CLAUSE_WORDS = {"from", "where", "order", "limit", "offset", "and", "or", "not", "in"}


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self, offset: int = 0) -> Token | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def is_word(self, word: str, offset: int = 0) -> bool:
        tok = self.peek(offset)
        return tok is not None and tok.kind == "name" and tok.text.lower() == word

    def is_punct(self, char: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "punct" and tok.text == char

    def take(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise SoqlError("unexpected end of query")
        self.i += 1
        return tok

    def expect_word(self, word: str) -> None:
        tok = self.take()
        if tok.kind != "name" or tok.text.lower() != word:
            raise SoqlError(f"unexpected token: '{tok.text}', expected {word.upper()}")

    def expect_punct(self, char: str) -> None:
        tok = self.take()
        if tok.kind != "punct" or tok.text != char:
            raise SoqlError(f"unexpected token: '{tok.text}', expected '{char}'")

    def name(self) -> str:
        tok = self.take()
        if tok.kind != "name":
            raise SoqlError(f"unexpected token: '{tok.text}'")
        return tok.text

    def query(self) -> Query:
        self.expect_word("select")
        items: list[Field | Count | Query] = [self.item()]
        while self.is_punct(","):
            self.take()
            items.append(self.item())
        self.expect_word("from")
        sobject = self.name()
        where = None
        if self.is_word("where"):
            self.take()
            where = self.condition()
        order: list[OrderBy] = []
        if self.is_word("order"):
            self.take()
            self.expect_word("by")
            order.append(self.order_key())
            while self.is_punct(","):
                self.take()
                order.append(self.order_key())
        limit = self.int_clause("limit")
        offset = self.int_clause("offset")
        return Query(tuple(items), sobject, where, tuple(order), limit, offset)

    def int_clause(self, word: str) -> int | None:
        if not self.is_word(word):
            return None
        self.take()
        tok = self.take()
        if tok.kind != "number" or not tok.text.isdigit():
            raise SoqlError(f"unexpected token: '{tok.text}', expected a number after {word}")
        return int(tok.text)

    def item(self) -> Field | Count | Query:
        if self.is_punct("("):
            self.take()
            sub = self.query()
            self.expect_punct(")")
            return sub
        if self.is_word("count") and self.peek(1) and self.peek(1).text == "(":  # type: ignore[union-attr]
            self.take()
            self.expect_punct("(")
            self.expect_punct(")")
            return Count()
        return self.path()

    def path(self) -> Field:
        parts = [self.name()]
        while self.is_punct("."):
            self.take()
            parts.append(self.name())
        if len(parts) == 1 and parts[0].lower() in _CLAUSE_WORDS:
            raise SoqlError(f"unexpected token: '{parts[0]}'")
        return Field(tuple(parts))

    def order_key(self) -> OrderBy:
        field = self.path()
        descending = False
        if self.is_word("asc") or self.is_word("desc"):
            descending = self.take().text.lower() == "desc"
        nulls_last = None
        if self.is_word("nulls"):
            self.take()
            tok = self.take()
            if tok.text.lower() not in ("first", "last"):
                raise SoqlError(f"unexpected token: '{tok.text}', expected FIRST or LAST")
            nulls_last = tok.text.lower() == "last"
        return OrderBy(field, descending, nulls_last)

    def condition(self) -> Condition:
        first = self.unary()
        if not (self.is_word("and") or self.is_word("or")):
            return first
        joiner = self.take().text.lower()
        items = [first, self.unary()]
        while self.is_word("and") or self.is_word("or"):
            tok = self.take()
            if tok.text.lower() != joiner:
                raise SoqlError(
                    "unexpected token: '" + tok.text + "'; use parentheses to mix AND and OR"
                )
            items.append(self.unary())
        return And(tuple(items)) if joiner == "and" else Or(tuple(items))

    def unary(self) -> Condition:
        if self.is_word("not"):
            self.take()
            return Not(self.unary())
        if self.is_punct("("):
            self.take()
            inner = self.condition()
            self.expect_punct(")")
            return inner
        field = self.path()
        if self.is_word("not") and self.is_word("in", 1):
            self.i += 2
            return In(field, self.value_list(), negated=True)
        if self.is_word("in"):
            self.take()
            return In(field, self.value_list(), negated=False)
        if self.is_word("like"):
            self.take()
            tok = self.take()
            if tok.kind != "string":
                raise SoqlError("LIKE needs a string literal")
            return Like(field, tok.text)
        tok = self.take()
        if tok.kind != "op":
            raise SoqlError(f"unexpected token: '{tok.text}'")
        return Comparison(field, "!=" if tok.text == "<>" else tok.text, self.value())

    def value_list(self) -> tuple[Value, ...]:
        self.expect_punct("(")
        values = [self.value()]
        while self.is_punct(","):
            self.take()
            values.append(self.value())
        self.expect_punct(")")
        return tuple(values)

    def value(self) -> Value:
        tok = self.take()
        if tok.kind == "string":
            return Value("string", tok.text)
        if tok.kind == "number":
            return Value("number", Decimal(tok.text))
        if tok.kind in ("date", "datetime"):
            return Value(tok.kind, tok.text)  # type: ignore[arg-type]
        word = tok.text.lower() if tok.kind == "name" else ""
        if word in ("true", "false"):
            return Value("boolean", word == "true")
        if word == "null":
            return Value("null", None)
        raise SoqlError(f"unexpected token: '{tok.text}'")


def parse(text: str) -> Query:
    """Parse a SOQL query; raises :class:`SoqlError` (MALFORMED_QUERY) on bad syntax."""
    parser = _Parser(text)
    query = parser.query()
    extra = parser.peek()
    if extra is not None:
        raise SoqlError(f"unexpected token: '{extra.text}'")
    return query
