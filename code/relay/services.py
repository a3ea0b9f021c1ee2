"""What the routes serve with: the app's services, built once by
`create_app` and kept in `app.extensions`."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from .auth import Authorizer
from .dashboard import Dashboard
from .lookup import Lookup
from .settings import Settings
from .spycloud import SpyCloud


@dataclass(frozen=True)
class Services:
    """The per-app resources the routes need."""

    settings: Settings
    authorizer: Authorizer
    spycloud: SpyCloud
    lookup: Lookup
    dashboard: Dashboard


def services() -> Services:
    """Return the services of the app serving this request."""
    found: Services = current_app.extensions["relay"]
    return found
