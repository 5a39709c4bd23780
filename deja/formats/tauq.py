"""Tauq Notation (TQN): JSON values as compact text, `dumps` and `loads`.

Written from the Tauq specification (github.com/Epistates/tauq, docs/src/spec/tauq_spec.md, the
examples and tests at commit 94ec2018, version 0.2.1); no code of that project is used. What this
module covers is what JSON can express:

    name "Alice"                  key-value pairs, one per line: the document is an object
    role admin                    barewords are strings; true false null and numbers are not
    tags [web api "two words"]    arrays: whitespace-separated, commas are ignored
    server { host db port 5432 }  objects; keys may be quoted
    !def User id name             a schema: the rows after it are objects with these fields
    1 Alice                       (two or more rows at the top level: the document is an array)
    ---                           ends the rows of the last !def
    users [ !use User ... ]       rows of a schema inside an array, one per line (or ';')
    # comment                     to the end of the line

`loads` also reads the spec's other forms: `;` as a line break, typed fields (`addr:Address`
takes `{ positional values }`, `tags:[Tag]` takes a list of rows), `field:value` named cells in a
row, a `!schemas ... ---` block. `!import` (files) is refused. Quoted strings know the escapes
\\" \\\\ \\n \\r \\t; any other character stands for itself (a backslash before another character is
kept), so no control character needs a \\u escape.

The document's value, as the spec's parser assembles it: consecutive key-value lines merge into
one object; each row and each other top-level value is one item; one item is the value itself,
any other number of items is an array of them. `dumps` therefore writes a top-level array either
as rows (two or more) or inside `[ ]`, and a top-level string always quoted.

Where this reader is stricter or wider than the reference parser: an unknown directive, a row
where a value is missing, or `inf`/`nan`/an overflowing number is an error here (TauqError, with
line and column); integers keep every digit (the reference turns ones beyond 64 bits into floats).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 100  # nesting limit of arrays and objects, both ways (the reference parser has the same)
# Layout, chosen by tokens (cl100k_base, python -m tools.tauq_savings): every line's indent
# and break costs about a token, so containers stay on one line up to INLINE_WIDTH characters and
# nesting is shown by one space. Lists that become schema rows always take lines of their own.
INLINE_WIDTH = 200
INDENT = " "

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_./@-]*", re.ASCII)  # what dumps writes without quotes
_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_NON_FINITE = re.compile(r"[+-]?(?:inf|infinity|nan)", re.ASCII | re.IGNORECASE)
_KEYWORDS = {"true": True, "false": False, "null": None}
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
_QUOTE = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_DELIMITERS = set('{}[],:;"#\n')


class TauqError(ValueError):
    """Malformed Tauq text; `line` and `column` (1-based) say where."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"{message} (line {line}, column {column})")
        self.message = message
        self.line = line
        self.column = column


# -- reading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "string", "directive", "---", "newline" (also ';'), or one of { } [ ] :
    text: str
    line: int
    column: int


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, line, line_start, n = 0, 1, 0, len(text)
    while i < n:
        ch = text[i]
        column = i - line_start + 1
        if ch == "\n":
            tokens.append(_Token("newline", ch, line, column))
            i, line, line_start = i + 1, line + 1, i + 1
        elif ch == "," or ch.isspace():
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch == ";":
            tokens.append(_Token("newline", ch, line, column))
            i += 1
        elif ch in "{}[]:":
            tokens.append(_Token(ch, ch, line, column))
            i += 1
        elif ch == "!":
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            tokens.append(_Token("directive", text[i + 1 : j], line, column))
            i = j
        elif text.startswith("---", i):
            tokens.append(_Token("---", "---", line, column))
            i += 3
        elif ch == '"':
            tokens_line = line  # a quoted string may run over several lines
            value, end, line, line_start = _quoted(text, i, line, line_start, column)
            tokens.append(_Token("string", value, tokens_line, column))
            i = end
        else:
            j = i + 1
            while j < n and text[j] not in _DELIMITERS and not text[j].isspace():
                j += 1
            tokens.append(_Token("word", text[i:j], line, column))
            i = j
    return tokens


def _quoted(text: str, start: int, line: int, line_start: int, column: int) -> tuple[str, int, int, int]:
    """The string opening at text[start] == '"': (value, index after it, line, line_start)."""
    out: list[str] = []
    i, n = start + 1, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            return "".join(out), i + 1, line, line_start
        if ch == "\\" and i + 1 < n:
            escaped = text[i + 1]
            out.append(_ESCAPES.get(escaped, "\\" + escaped))
            i += 2
            if escaped == "\n":
                line, line_start = line + 1, i
            continue
        if ch == "\n":
            line, line_start = line + 1, i + 1
        out.append(ch)
        i += 1
    raise TauqError("unterminated string", text.count("\n", 0, start) + 1, column)


def _scalar(token: _Token) -> Any:
    """A bareword's value: a number, true/false/null, or else the word as a string."""
    word = token.text
    if _INT.fullmatch(word):
        return int(word)
    if _FLOAT.fullmatch(word):
        value = float(word)
        if not math.isfinite(value):
            raise TauqError(f"number {word} is out of range", token.line, token.column)
        return value
    if _NON_FINITE.fullmatch(word):
        raise TauqError(f"{word} is not a JSON number", token.line, token.column)
    return _KEYWORDS.get(word, word)


def _is_ident(token: _Token | None) -> bool:
    """A bareword that reads as a string (a key, a schema or field name)."""
    return token is not None and token.kind == "word" and isinstance(_scalar(token), str)


@dataclass(frozen=True)
class _Field:
    name: str
    schema: str | None = None  # field:Schema, a nested row in { }
    is_list: bool = False  # field:[Schema], a list of rows


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.schemas: dict[str, list[_Field]] = {}
        self.depth = 0
        lines = text.split("\n")
        self.end = (len(lines), len(lines[-1]) + 1)  # where "unexpected end" errors point

    # token access

    def peek(self, ahead: int = 0) -> _Token | None:
        index = self.pos + ahead
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def error(self, message: str, token: _Token | None = None) -> TauqError:
        token = token or self.peek()
        if token is None:
            return TauqError(message + " (at the end of the text)", *self.end)
        return TauqError(message, token.line, token.column)

    def at(self, *kinds: str) -> bool:
        token = self.peek()
        return token is not None and token.kind in kinds

    # the document

    def document(self) -> Any:
        items: list[Any] = []
        pairs: dict[str, Any] | None = None
        active: str | None = None  # the schema whose rows the top level reads (after !def / !use)
        while (token := self.peek()) is not None:
            if token.kind in ("newline",):
                self.pos += 1
                continue
            if token.kind == "---":
                self.pos += 1
                active = None
                continue
            if token.kind in ("}", "]"):
                raise self.error(f"unexpected '{token.kind}' at the top level (mismatched brackets)")
            if pairs is not None and (token.kind == "directive" or active is not None or not _is_ident(token)):
                items.append(pairs)
                pairs = None
            if token.kind == "directive":
                active = self.directive(active)
            elif active is not None:
                items.append(self.row(active))
            elif _is_ident(token):
                self.pos += 1
                key = token.text
                if self.at(":"):
                    self.pos += 1
                value = self.value()
                if value is _MISSING:
                    raise self.error(f"expected a value for key {key!r} on the same line")
                pairs = {} if pairs is None else pairs
                pairs[key] = value
            else:
                value = self.value()
                if value is _MISSING:
                    raise self.error(f"unexpected {token.kind} {token.text!r}")
                items.append(value)
        if pairs is not None:
            items.append(pairs)
        return items[0] if len(items) == 1 else items

    def directive(self, active: str | None) -> str | None:
        token = self.take()
        name = token.text
        if name == "def":
            return self.define(token)
        if name == "use":
            return self.use_name(token)
        if name in ("schemas", "models"):
            self.schema_block(token)
            return active
        if name == "import":
            raise self.error("!import is not supported (this reader has no files)", token)
        raise self.error(f"unknown directive !{name}", token)

    def define(self, directive: _Token) -> str:
        if not _is_ident(self.peek()):
            raise self.error("!def needs a schema name", self.peek() or directive)
        name = self.take().text
        self.schemas[name] = self.fields()
        return name

    def fields(self) -> list[_Field]:
        fields: list[_Field] = []
        while _is_ident(self.peek()):
            name = self.take().text
            schema, is_list = None, False
            if self.at(":"):
                self.pos += 1
                is_list = self.at("[")
                if is_list:
                    self.pos += 1
                if not _is_ident(self.peek()):
                    raise self.error(f"expected a type name after {name}:")
                schema = self.take().text
                if is_list:
                    if not self.at("]"):
                        raise self.error(f"expected ']' after {name}:[{schema}")
                    self.pos += 1
            fields.append(_Field(name, schema, is_list))
        return fields

    def use_name(self, directive: _Token) -> str:
        token = self.peek()
        if not _is_ident(token):
            raise self.error("!use needs a schema name", token or directive)
        if token.text not in self.schemas:
            raise self.error(f"!use names an undefined schema {token.text!r}", token)
        self.pos += 1
        return token.text

    def schema_block(self, directive: _Token) -> None:
        while True:
            token = self.peek()
            if token is None:
                raise self.error(f"!{directive.text} block without its closing '---'", directive)
            if token.kind == "---":
                self.pos += 1
                return
            if token.kind == "newline":
                self.pos += 1
            elif _is_ident(token):
                self.pos += 1
                self.schemas[token.text] = self.fields()
            else:
                raise self.error("expected a schema name or '---' in the schema block")

    # values

    def value(self) -> Any:
        """The value at the current token, or _MISSING (nothing consumed) when none starts there."""
        token = self.peek()
        if token is None:
            return _MISSING
        if token.kind == "string":
            self.pos += 1
            return token.text
        if token.kind == "word":
            self.pos += 1
            return _scalar(token)
        if token.kind == "[":
            return self.nested(self.array)
        if token.kind == "{":
            return self.nested(self.object)
        return _MISSING

    def nested(self, parse) -> Any:
        if self.depth >= MAX_DEPTH:
            raise self.error(f"nested deeper than {MAX_DEPTH} levels")
        self.depth += 1
        try:
            return parse()
        finally:
            self.depth -= 1

    def array(self) -> list[Any]:
        opening = self.take()
        items: list[Any] = []
        schema: str | None = None
        while True:
            token = self.peek()
            if token is None:
                raise self.error("array not closed: expected ']'", opening)
            if token.kind == "]":
                self.pos += 1
                return items
            if token.kind in ("newline", ":"):
                self.pos += 1
            elif token.kind == "}":
                raise self.error("unexpected '}' in an array (mismatched brackets)")
            elif token.kind == "directive":
                if token.text != "use":
                    raise self.error(f"only !use may stand inside an array, not !{token.text}")
                self.pos += 1
                schema = self.use_name(token)
            elif schema is not None:
                items.append(self.row(schema))
            else:
                value = self.value()
                if value is _MISSING:
                    raise self.error(f"expected a value or ']' in the array, got {token.text!r}")
                items.append(value)

    def object(self) -> dict[str, Any]:
        opening = self.take()
        result: dict[str, Any] = {}
        while True:
            token = self.peek()
            if token is None:
                raise self.error("object not closed: expected '}'", opening)
            if token.kind == "}":
                self.pos += 1
                return result
            if token.kind == "newline":
                self.pos += 1
                continue
            if token.kind != "string" and not _is_ident(token):
                raise self.error(f"expected a key in the object, got {token.text!r}")
            self.pos += 1
            if self.at(":"):
                self.pos += 1
            value = self.value()
            if value is _MISSING:
                raise self.error(f"expected a value for key {token.text!r} on the same line")
            result[token.text] = value

    def row(self, schema: str) -> dict[str, Any]:
        """One row of `schema`: a value for each field, in field order (or as `field:value`), on one line."""
        fields = self.schemas[schema]
        start = self.peek()
        if not fields:
            raise self.error(f"schema {schema} has no fields, so it has no rows", start)
        result: dict[str, Any] = {}
        index = 0
        while (token := self.peek()) is not None and token.kind not in ("newline", "}", "]", "directive"):
            following = self.peek(1)
            if _is_ident(token) and following is not None and following.kind == ":":
                self.pos += 2
                named = next((f for f in fields if f.name == token.text), _Field(token.text))
                value = self.cell(named)
                if value is _MISSING:
                    raise self.error(f"expected a value for field {token.text!r}")
                result[token.text] = value
                continue
            while index < len(fields) and fields[index].name in result:
                index += 1  # given by name already
            if index == len(fields):
                break  # the rest of the line is the next row (the reference parser reads it so)
            value = self.cell(fields[index])
            if value is _MISSING:
                raise self.error(f"expected a value for field {fields[index].name!r} of {schema}")
            result[fields[index].name] = value
            index += 1
        missing = [f.name for f in fields if f.name not in result]
        if missing:
            raise self.error(f"a row of {schema} lacks {', '.join(missing)}", start)
        return result

    def cell(self, field: _Field) -> Any:
        """A row's value for `field`: typed fields take positional rows; anything else is a value."""
        if field.schema is None or field.schema not in self.schemas:
            return self.value()  # an undefined type name is documentation (e.g. id:int)
        if field.is_list and self.at("["):
            return self.nested(lambda: self.typed_list(field.schema))
        if not field.is_list and self.at("{"):
            return self.nested(lambda: self.typed_object(field.schema))
        return self.value()

    def typed_object(self, schema: str) -> dict[str, Any]:
        opening = self.take()
        result = self.row(schema)
        if not self.at("}"):
            raise self.error(f"expected '}}' closing the {schema} value opened at line {opening.line}")
        self.pos += 1
        return result

    def typed_list(self, schema: str) -> list[dict[str, Any]]:
        opening = self.take()
        items: list[dict[str, Any]] = []
        while True:
            token = self.peek()
            if token is None:
                raise self.error("list not closed: expected ']'", opening)
            if token.kind == "]":
                self.pos += 1
                return items
            if token.kind == "newline":
                self.pos += 1
            elif token.kind == "{":
                self.pos += 1
                while self.at("newline"):
                    self.pos += 1
                items.append(self.row(schema))
                while self.at("newline"):
                    self.pos += 1
                if not self.at("}"):
                    raise self.error(f"expected '}}' closing a {schema} row")
                self.pos += 1
            else:
                items.append(self.row(schema))


_MISSING = object()


def loads(text: str) -> Any:
    """Tauq text -> the JSON value it stands for; TauqError (a ValueError) names line and column."""
    if not isinstance(text, str):
        raise TypeError(f"loads() takes str, not {type(text).__name__}")
    return _Parser(text).document()


# -- writing -------------------------------------------------------------------------------------


def _is_word(text: str) -> bool:
    """Can `text` be written bare and read back as this same string?"""
    return bool(_WORD.fullmatch(text)) and text not in _KEYWORDS and not _NON_FINITE.fullmatch(text)


def _string(text: str) -> str:
    if _is_word(text):
        return text
    return '"' + "".join(_QUOTE.get(ch, ch) for ch in text) + '"'


def _scalar_text(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a JSON number")
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    raise TypeError(f"a {type(value).__name__} is not a JSON value")


@dataclass(frozen=True)
class _Table:
    """A list written as rows of one schema."""

    name: str
    fields: tuple[str, ...]


class _Writer:
    def __init__(self) -> None:
        self.schemas: dict[tuple[str, ...], str] = {}  # fields -> name, in order of first use

    def table(self, items: list[Any], context: str) -> _Table | None:
        """The schema to write `items` with, registered for the document's !def lines, or None."""
        table = self.candidate(items, context)
        if table is not None:
            self.schemas.setdefault(table.fields, table.name)
        return table

    def candidate(self, items: list[Any], context: str) -> _Table | None:
        """A schema for `items` when they are objects of the same keys and rows save text."""
        if len(items) < 2 or not all(isinstance(item, dict) and item for item in items):
            return None
        fields = tuple(items[0])
        if not all(_is_word(key) for key in fields) or any(item.keys() != items[0].keys() for item in items[1:]):
            return None
        name = self.schemas.get(fields) or self.new_name(context)
        keys = sum(len(key) + 1 for key in fields)
        # Rows drop each object's keys and braces; a schema costs its !def and !use lines.
        if len(items) * (keys + 4) <= keys + 2 * len(name) + 11:
            return None
        return _Table(name, fields)

    def has_table(self, value: Any, context: str) -> bool:
        """Does a list inside `value` want schema rows? (Those need lines of their own.)"""
        if isinstance(value, dict):
            return any(self.has_table(item, key) for key, item in value.items())
        if isinstance(value, list | tuple):
            items = list(value)
            return self.candidate(items, context) is not None or any(self.has_table(i, context) for i in items)
        return False

    def new_name(self, context: str) -> str:
        base = context[:1].upper() + context[1:]
        if len(base) > 3 and base.endswith("s") and not base.endswith("ss"):
            base = base[:-1]  # users -> User
        if not _is_word(base) or base.lower() in _KEYWORDS:
            base = "Row"
        taken = set(self.schemas.values())
        name, n = base, 2
        while name in taken:
            name, n = f"{base}{n}", n + 1
        return name

    def inline(self, value: Any, depth: int) -> str:
        """The value on one line (no schemas)."""
        if depth > MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            if not value:
                return "{}"
            parts = (f"{self.key(k)} {self.inline(v, depth + 1)}" for k, v in value.items())
            return "{ " + " ".join(parts) + " }"
        if isinstance(value, list | tuple):
            return "[" + " ".join(self.inline(v, depth + 1) for v in value) + "]"
        return _scalar_text(value)

    @staticmethod
    def key(key: Any) -> str:
        if not isinstance(key, str):
            raise TypeError(f"object keys must be strings, not {type(key).__name__}")
        return _string(key)

    def lines(self, value: Any, indent: str, context: str, depth: int) -> list[str]:
        """The value laid out from the current column: its first line continues the caller's line,
        the others start with `indent`."""
        one_line = self.inline(value, depth)
        if not isinstance(value, dict | list | tuple):
            return [one_line]
        if len(one_line) + len(indent) <= INLINE_WIDTH and not self.has_table(value, context):
            return [one_line]
        inner = indent + INDENT
        out = ["{" if isinstance(value, dict) else "["]
        if isinstance(value, dict):
            for key, item in value.items():
                out += self.entry(self.key(key), item, inner, key, depth + 1)
        else:
            table = self.table(list(value), context)
            if table is not None:
                out.append(f"{inner}!use {table.name}")
                out += [inner + self.row(item, table, depth + 1) for item in value]
            else:
                for item in value:
                    out += self.entry("", item, inner, context, depth + 1)
        out.append(indent + ("}" if isinstance(value, dict) else "]"))
        return out

    def entry(self, head: str, value: Any, indent: str, context: str, depth: int) -> list[str]:
        """`head value` (a key and its value, or just a value) starting a line at `indent`."""
        first, *rest = self.lines(value, indent, context, depth)
        return [indent + (f"{head} {first}" if head else first), *rest]

    def row(self, item: dict[str, Any], table: _Table, depth: int) -> str:
        return " ".join(self.inline(item[field], depth + 1) for field in table.fields)

    def document(self, value: Any) -> str:
        if isinstance(value, dict) and value and all(isinstance(k, str) and _is_word(k) for k in value):
            body: list[str] = []
            for key, item in value.items():
                body += self.entry(key, item, "", key, 1)
        elif isinstance(value, list | tuple):
            table = self.table(list(value), "rows")
            if table is not None:  # top-level rows: two or more, so they read back as an array
                rows = [self.row(item, table, 0) for item in value]
                return "\n".join([f"!def {table.name} {' '.join(table.fields)}", *rows])
            body = self.lines(value, "", "rows", 0)
        elif isinstance(value, str):
            body = ['"' + "".join(_QUOTE.get(ch, ch) for ch in value) + '"']  # a bare word alone is a key
        else:
            body = self.lines(value, "", "rows", 0)
        if not self.schemas:
            return "\n".join(body)
        defs = [f"!def {name} {' '.join(fields)}" for fields, name in self.schemas.items()]
        return "\n".join([*defs, "---", *body])  # --- ends the last !def's rows before the data


def dumps(value: Any) -> str:
    """A JSON value (dict, list, str, int, float, bool, None) -> Tauq text that `loads` reads back
    as an equal value. Uniform lists of objects become schema rows where that is shorter."""
    return _Writer().document(value)
