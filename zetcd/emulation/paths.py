"""ZooKeeper path rules (PathUtils.validatePath), as pure functions.

ZooKeeper validates paths on writes only; reads of a path no node can have simply find no node.
Java strings are UTF-16, so every character outside the Basic Multilingual Plane is a surrogate
pair and falls in the rejected range 0xD800-0xF8FF.
"""

from __future__ import annotations

import re


def _bad_char(c: str) -> bool:
    o = ord(c)
    return (
        0 < o <= 0x1F
        or 0x7F <= o <= 0x9F
        or 0xD800 <= o <= 0xF8FF
        or 0xFFF0 <= o <= 0xFFFF
        or o > 0xFFFF  # a surrogate pair in Java
    )


# The common case in one regex: printable ASCII segments, none empty, "." or "..".
_PLAIN = re.compile(r"(?:/(?!\.\.?(?:/|$))[\x20-\x2e\x30-\x7e]+)+")


def is_valid_path(path: str | None, sequential: bool = False) -> bool:
    """True when ZooKeeper would accept ``path`` for a write.

    A sequential create validates ``path + "1"``, so "/a/" is a valid sequential prefix.
    """
    if path is None:
        return False
    if sequential:
        path = path + "1"
    if _PLAIN.fullmatch(path):
        return True
    n = len(path)
    if n == 0 or path[0] != "/":
        return False
    if n == 1:
        return True
    if path[-1] == "/":
        return False
    last = "/"
    for i in range(1, n):
        c = path[i]
        if c == "\0":
            return False
        if c == "/" and last == "/":
            return False
        if c == "." and last == "." and path[i - 2] == "/" and (i + 1 == n or path[i + 1] == "/"):
            return False
        if c == "." and path[i - 1] == "/" and (i + 1 == n or path[i + 1] == "/"):
            return False
        if _bad_char(c):
            return False
        last = c
    return True


def parent_of(path: str) -> str:
    """The parent of a valid non-root path ("/a" -> "/", "/a/b" -> "/a")."""
    i = path.rfind("/")
    return path[:i] if i > 0 else "/"


def name_of(path: str) -> str:
    return path[path.rfind("/") + 1 :]


def join(parent: str, name: str) -> str:
    return "/" + name if parent == "/" else parent + "/" + name
