"""Passwords out of log and error lines: a URL's (`redis://user:***@host:6379/0`), and a
Host header's or request target's (`user:***@example.com`).

The service names a Redis by host and port, and redis-py's errors do too;
this is the net under that, for any line that could still carry a URL: the
one naming a bad setting, and every log line (logs.py applies it).
"""

from __future__ import annotations

import re

# A URL's userinfo up to its last "@" before whitespace (a password may hold an
# unescaped ":", "/" or "@"); the username before the first ":" stays.
_USERINFO = re.compile(r"(?P<start>://[^\s:/@]*):\S*@")
# redis-py also takes the password as a query parameter (`?password=...`).
_PASSWORD_PARAMETER = re.compile(r"(?P<start>[?&]password=)[^\s&]*", re.IGNORECASE)

MASK = "***"


def masked(text: str) -> str:
    """`text` with every URL password in it written `***`."""
    text = _USERINFO.sub(rf"\g<start>:{MASK}@", text)
    return _PASSWORD_PARAMETER.sub(rf"\g<start>{MASK}", text)


def masked_authority(authority: str) -> str:
    """A URL's authority without its scheme (a Host header, a request target's
    `user:password@host`) with the password written `***`; the user stays.

    `masked` needs the `://` to tell a password from other text; an authority
    is only ever a host, so its userinfo is found without one.
    """
    userinfo, at, host = authority.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    return f"{user}:{MASK}@{host}" if at and colon else authority
