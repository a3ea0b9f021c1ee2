"""The relay's version, defined once: /version and the User-Agent show it."""

VERSION = "1.0.0"
