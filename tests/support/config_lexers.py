"""Small lexers for the configuration languages stackgen renders, for the hostile-input property
(tests/unit/generate/test_render_hostile.py): what a value turns into once the real program reads the file.

Each follows its upstream lexer's rules closely enough to tell "one token at the intended place" from
"broke out into syntax"; none evaluates anything. A construct they do not model (a Caddyfile heredoc,
a JavaScript regular expression or template literal) raises `LexError`: stackgen's files have none,
so meeting one means a value brought it in.

* Caddyfile (caddyconfig/caddyfile/lexer.go): tokens split on Unicode white space; a newline ends a
  line (a directive is the tokens of one line); `"..."` quotes with `\\"`
  the only escape; `` `...` `` quotes with none; `#` starts a comment only at the start of a token;
  `{` and `}` are tokens of their own when they stand alone. `{$VAR}` is replaced before lexing
  (parse.go replaceEnvVars) and `{...}` is a runtime placeholder: `placeholders()` finds both.
* nginx.conf (src/core/ngx_conf_file.c, ngx_conf_read_token): words split on space, tab, CR, LF, `;`
  and `{`; at the start of a word `;` ends a directive, `{` opens a block, `}` closes one (inside a
  word `}` is just a character); `"..."` and `'...'` quote, with `\\` escaping the next character;
  `#` starts a comment at the start of a word; `$name` / `${name}` are variables (in the arguments of
  the directives that take them).
* A backslash outside quotes (Caddy and nginx both give it meaning) raises `LexError`: stackgen writes
  none, so one in a rendered file came from a value.
* JavaScript (ECMAScript lexical grammar, the part settings.js uses): identifiers, numbers,
  punctuators, `'`/`"` strings (no raw line terminator inside), `//` and `/* */` comments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class LexError(ValueError):
    pass


@dataclass(frozen=True)
class Token:
    text: str
    line: int
    quoted: bool = False
    kind: str = "word"


# --- Caddyfile ---------------------------------------------------------------------------------


def caddyfile_tokens(text: str) -> list[Token]:
    tokens: list[Token] = []
    line = 1
    i, n = 0, len(text)
    if text.startswith("\ufeff"):
        i = 1
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
            continue
        if ch.isspace():
            i += 1
            continue
        if ch == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        start_line = line
        if ch == '"':
            value, i = [], i + 1
            while True:
                if i >= n:
                    raise LexError(f"line {start_line}: unterminated quoted token")
                c = text[i]
                if c == "\\" and i + 1 < n and text[i + 1] == '"':
                    value.append('"')
                    i += 2
                    continue
                if c == '"':
                    i += 1
                    break
                if c == "\n":
                    line += 1
                value.append(c)
                i += 1
            tokens.append(Token("".join(value), start_line, True))
            continue
        if ch == "`":
            end = text.find("`", i + 1)
            if end < 0:
                raise LexError(f"line {start_line}: unterminated backtick token")
            value = text[i + 1 : end]
            line += value.count("\n")
            tokens.append(Token(value, start_line, True))
            i = end + 1
            continue
        if text.startswith("<<", i) and re.match(r"<<[A-Za-z0-9_-]+\n", text[i:]):
            raise LexError(f"line {start_line}: heredoc (stackgen renders none)")
        start = i
        while i < n and not text[i].isspace():
            i += 1
        word = text[start:i]
        if "\\" in word:  # escapes and line continuations: modelled nowhere here, rendered nowhere by stackgen
            raise LexError(f"line {start_line}: backslash in a token (stackgen renders none)")
        tokens.append(Token(word, start_line))
    return tokens


def caddyfile_lines(text: str) -> list[list[Token]]:
    """Tokens grouped into logical lines, a directive and its arguments: as Caddy's dispenser (isNewLine), a
    token starts a new line when it starts below the line the previous token ended on."""
    lines: list[list[Token]] = []
    for token in caddyfile_tokens(text):
        if lines:
            previous = lines[-1][-1]
            if token.line <= previous.line + previous.text.count("\n"):
                lines[-1].append(token)
                continue
        lines.append([token])
    return lines


_PLACEHOLDER = re.compile(r"\{[^{}\s]*\}")


def placeholders(token: Token) -> list[str]:
    """`{env.X}`, `{$X}`, `{host}`: what Caddy would replace inside this token."""
    return _PLACEHOLDER.findall(token.text)


def caddyfile_check_braces(lines: list[list[Token]]) -> None:
    depth = 0
    for tokens in lines:
        for token in tokens:
            if token.quoted:
                continue
            if token.text == "{":
                depth += 1
            elif token.text == "}":
                depth -= 1
                if depth < 0:
                    raise LexError(f"line {token.line}: unexpected }}")
    if depth:
        raise LexError("unclosed {")


# --- nginx ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Directive:
    """One nginx directive: its words, how it ended (`;` or `{`), and the blocks it is in."""

    words: tuple[Token, ...]
    end: str
    context: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.words[0].text

    @property
    def args(self) -> list[str]:
        return [w.text for w in self.words[1:]]


_NGINX_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}


def nginx_tokens(text: str) -> list[Token]:
    tokens: list[Token] = []
    line, i, n = 1, 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
            continue
        if ch in " \t\r":
            i += 1
            continue
        if ch == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        if ch in ";{}":
            tokens.append(Token(ch, line, kind="punct"))
            i += 1
            continue
        start_line = line
        if ch in "\"'":
            quote, value, i = ch, [], i + 1
            while True:
                if i >= n:
                    raise LexError(f"line {start_line}: unterminated quoted word")
                c = text[i]
                if c == "\\" and i + 1 < n:
                    nxt = text[i + 1]
                    value.append(_NGINX_ESCAPES.get(nxt, "\\" + nxt))
                    i += 2
                    continue
                if c == quote:
                    i += 1
                    break
                if c == "\n":
                    line += 1
                value.append(c)
                i += 1
            if i < n and text[i] not in " \t\r\n;{":
                raise LexError(f"line {line}: unexpected {text[i]!r} after a quoted word")
            tokens.append(Token("".join(value), start_line, True))
            continue
        # A word ends at white space, `;` or `{` (not `${`); `}` and quotes inside a word are part of it.
        start = i
        while i < n and (text[i] not in " \t\r\n;{" or (text[i] == "{" and text[i - 1] == "$")):
            i += 1
        word = text[start:i]
        if "\\" in word:  # nginx keeps the next character in the word: modelled nowhere here, rendered nowhere
            raise LexError(f"line {start_line}: backslash in a word (stackgen renders none)")
        tokens.append(Token(word, start_line))
    return tokens


def nginx_directives(text: str) -> list[Directive]:
    """Every directive with its context (the names of the blocks it is in); raises on bad nesting."""
    found: list[Directive] = []
    stack: list[str] = []
    words: list[Token] = []
    for token in nginx_tokens(text):
        if token.kind == "punct" and token.text in ";{":
            if not words:
                raise LexError(f"line {token.line}: unexpected {token.text!r}")
            found.append(Directive(tuple(words), token.text, tuple(stack)))
            if token.text == "{":
                stack.append(words[0].text)
            words = []
        elif token.kind == "punct":  # }
            if words or not stack:
                raise LexError(f"line {token.line}: unexpected '}}'")
            stack.pop()
        else:
            words.append(token)
    if words or stack:
        raise LexError("unexpected end of file")
    return found


_NGINX_VARIABLE = re.compile(r"\$(\{[A-Za-z0-9_]+\}|[A-Za-z0-9_]+)")


def nginx_variables(word: str) -> list[str]:
    return _NGINX_VARIABLE.findall(word)


# --- JavaScript ------------------------------------------------------------------------------------

_JS_PUNCT = sorted(
    ["{", "}", "(", ")", "[", "]", ";", ",", "<", ">", "<=", ">=", "==", "!=", "===", "!==", "+", "-", "*", "/", "%", "++", "--",
     "<<", ">>", ">>>", "&", "|", "^", "!", "~", "&&", "||", "??", "?", ":", "=", "+=", "-=", "*=", "/=", "%=", "<<=", ">>=",
     ">>>=", "&=", "|=", "^=", "=>", ".", "...", "?.", "**"],
    key=len,
    reverse=True,
)
_JS_LINE_TERMINATORS = "\n\r\u2028\u2029"
_JS_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_JS_NUMBER = re.compile(r"(0[xX][0-9a-fA-F]+|[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?|\.[0-9]+([eE][+-]?[0-9]+)?)")


def _js_string(text: str, i: int, line: int) -> tuple[str, int]:
    quote = text[i]
    out, i = [], i + 1
    while True:
        if i >= len(text):
            raise LexError(f"line {line}: unterminated string literal")
        c = text[i]
        if c in _JS_LINE_TERMINATORS and c not in "\u2028\u2029":
            raise LexError(f"line {line}: line break inside a string literal")
        if c == quote:
            return "".join(out), i + 1
        if c == "\\":
            nxt = text[i + 1] if i + 1 < len(text) else ""
            if nxt == "u":
                if text[i + 2 : i + 3] == "{":
                    end = text.index("}", i + 3)
                    out.append(chr(int(text[i + 3 : end], 16)))
                    i = end + 1
                    continue
                code = int(text[i + 2 : i + 6], 16)
                i += 6
                if 0xD800 <= code < 0xDC00 and text[i : i + 2] == "\\u":  # a surrogate pair, as JSON writes it
                    low = int(text[i + 2 : i + 6], 16)
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
                out.append(chr(code))
                continue
            if nxt == "x":
                out.append(chr(int(text[i + 2 : i + 4], 16)))
                i += 4
                continue
            if nxt in _JS_LINE_TERMINATORS:  # a line continuation
                i += 2
                continue
            out.append({"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1


def js_tokens(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n, line = 0, len(text), 1
    while i < n:
        ch = text[i]
        if ch in _JS_LINE_TERMINATORS:
            line += 1
            i += 1
            continue
        if ch.isspace() or ch == "\ufeff":
            i += 1
            continue
        if text.startswith("//", i):
            while i < n and text[i] not in _JS_LINE_TERMINATORS:
                i += 1
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise LexError(f"line {line}: unterminated comment")
            line += text.count("\n", i, end)
            i = end + 2
            continue
        if ch in "'\"":
            value, i = _js_string(text, i, line)
            tokens.append(Token(value, line, True, "string"))
            continue
        if ch == "`":
            raise LexError(f"line {line}: template literal (stackgen renders none)")
        m = _JS_IDENT.match(text, i)
        if m:
            tokens.append(Token(m.group(), line, kind="ident"))
            i = m.end()
            continue
        m = _JS_NUMBER.match(text, i)
        if m:
            tokens.append(Token(m.group(), line, kind="number"))
            i = m.end()
            continue
        for punct in _JS_PUNCT:
            if text.startswith(punct, i):
                tokens.append(Token(punct, line, kind="punct"))
                i += len(punct)
                break
        else:
            raise LexError(f"line {line}: unexpected character {ch!r}")
    _check_js_brackets(tokens)
    return tokens


def _check_js_brackets(tokens: list[Token]) -> None:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for token in tokens:
        if token.kind != "punct":
            continue
        if token.text in "([{":
            stack.append(token.text)
        elif token.text in pairs and (not stack or stack.pop() != pairs[token.text]):
            raise LexError(f"line {token.line}: unbalanced {token.text!r}")
    if stack:
        raise LexError("unclosed bracket")


def js_property(tokens: list[Token], name: str) -> list[Token]:
    """The value tokens of every `name: <value>` in an object literal (up to the next `,` or `}`)."""
    found = []
    for idx, token in enumerate(tokens[:-2]):
        if token.kind == "ident" and token.text == name and tokens[idx + 1].text == ":":
            found.append(tokens[idx + 2])
    return found


def js_string_value(token: Token) -> str:
    if token.kind != "string":
        raise LexError(f"line {token.line}: expected a string literal, found {token.text!r}")
    return token.text
