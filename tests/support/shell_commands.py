"""The external commands a POSIX shell script calls: what an image must have on PATH.

Why a small tokenizer and not a full parser: our rendered scripts are plain POSIX sh (no heredocs,
no eval), and what the contract checks need is conservative: every word in command position that
is not a shell keyword, builtin, assignment or function the script defines. A word that is missed
would be a gap in the check, so the tests of this module include the tricky spots (command
substitution, `&&`/`||`, pipes, `if`/`while` heads, background jobs, redirections).
"""

from __future__ import annotations

import re
import shlex

KEYWORDS = {"if", "then", "else", "elif", "fi", "while", "until", "do", "done", "for", "in", "case", "esac",
            "{", "}", "!", "function"}
# Builtins of both dash and BusyBox ash (and so of any /bin/sh we run under).
BUILTINS = {"set", "trap", "wait", "exit", "return", "local", "export", "shift", "continue", "break", ".",
            ":", "cd", "echo", "printf", "read", "eval", "exec", "command", "umask", "unset", "true", "false",
            "[", "test", "kill", "readonly", "times", "type", "ulimit", "alias", "getopts", "hash", "pwd"}
SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", ";;", "\n", "`"}
_FUNCTION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(\)", re.M)
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_WORD = re.compile(r"^[A-Za-z0-9_./\[:-]+$")


def defined_functions(script: str) -> set[str]:
    return set(_FUNCTION.findall(script))


_COMMENT = re.compile(r"(^|\s)#.*$")


def _strip_comments(script: str) -> str:
    """Drop comments line by line: `#` starts one at the beginning of a word (POSIX), so `${x##*/}`
    is not one, and a comment ends at its line (it must not hide the lines after it)."""
    lines = [_COMMENT.sub("", line) for line in script.replace("\\\n", " ").splitlines()]
    return "\n".join(line for line in lines if line.strip())


def command_words(script: str) -> list[str]:
    """Every word in command position, in order (keywords and assignments skipped)."""
    text = _strip_comments(script).replace("$((", " ( $ARITH ").replace("$(", " ( ").replace("`", " ` ")
    text = text.replace("\n", " ; ")
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|()")
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    lexer.commenters = ""
    words: list[str] = []
    expect_command = True
    after_redirect = False
    for token in lexer:
        if token in SEPARATORS or token == "\n" or set(token) <= set(";&|()\n"):
            expect_command = True
            continue
        if "\n" in token:
            expect_command = True
            token = token.strip()
            if not token:
                continue
        if not expect_command:
            continue
        if token in ("for", "case"):
            expect_command = False  # `for NAME in WORDS`, `case WORD in`: no command until the next separator
            continue
        if token in KEYWORDS:
            continue  # the next word is still in command position (`if cmd`, `then cmd`, `do cmd`)
        if _ASSIGNMENT.match(token):
            continue  # `VAR=value cmd`: cmd follows
        if after_redirect:
            after_redirect = False
            continue
        if not _WORD.match(token):
            expect_command = False  # `$VAR`, `"$@"`, arithmetic operators: not a command name
            continue
        words.append(token)
        expect_command = False
    return words


def external_commands(script: str) -> set[str]:
    """Commands the image must provide: command words minus builtins, keywords, the script's functions,
    variable expansions (`"$@"`, `$PID`) and arithmetic."""
    functions = defined_functions(script)
    found = set()
    for word in command_words(script):
        if word in BUILTINS or word in functions or word.startswith(("$", "\"$", "{", "((")) or "()" in word:
            continue
        if word.startswith(("<", ">", "2>")) or word.isdigit():
            continue
        found.add(word.rsplit("/", 1)[-1] if word.startswith("/") else word)
    return found


def healthcheck_commands(test: list[str]) -> set[str]:
    """The commands a compose healthcheck runs (CMD: the executable; CMD-SHELL: sh and the script's)."""
    if not test or test[0] == "NONE":
        return set()
    if test[0] == "CMD":
        return {test[1].rsplit("/", 1)[-1]}
    if test[0] == "CMD-SHELL":
        return {"sh"} | external_commands(test[1]) | {w for w in command_words(test[1]) if w in ("test", "[")}
    return external_commands(" ".join(test))
