"""What a client may be shown of server-side strings: no passwords, no server paths."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: Query parameters that carry credentials in connection URLs (redis-py accepts ``?password=``).
_SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pass", "token", "secret"})


def redact_url(url: str) -> str:
    """`url` with every password replaced by ``***``: in the user part and in the query.

    ``redis://app:s3cret@redis:6379/0?password=x`` -> ``redis://app:***@redis:6379/0?password=***``.
    A URL that cannot be parsed is reduced to its scheme, so nothing secret leaks through it.
    """
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            user = parts.username or ""
            netloc = f"{user}:***@{netloc.rpartition('@')[2]}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(key.lower() in _SECRET_QUERY_KEYS for key, _ in pairs):
                masked = [
                    (key, "***" if key.lower() in _SECRET_QUERY_KEYS else value)
                    for key, value in pairs
                ]
                query = urlencode(masked, safe="*")
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:
        scheme = url.partition("://")[0]
        return f"{scheme}://***" if scheme and scheme != url else "***"


# An absolute path inside a message: "/" starting a word, up to a blank, quote or separator.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])/[^\s'\"`:,;()\[\]{}<>]+")


def hide_paths(message: str, roots: Iterable[Path]) -> str:
    """`message` without server paths, for clients: paths inside one of `roots` (the model
    repository, the data directory) become relative to it ("digits/3/model.json": model,
    version, file), any other absolute path is cut to its last component. Logs keep the full
    message.
    """
    prefixes = {str(p) for root in roots for p in (root, root.absolute(), root.resolve())}
    for prefix in sorted(prefixes, key=len, reverse=True):
        if prefix not in ("", ".", "/"):
            message = message.replace(prefix.rstrip("/") + "/", "")
    return _ABSOLUTE_PATH.sub(lambda match: Path(match.group()).name or "/", message)
