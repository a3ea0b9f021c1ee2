"""The WSGI entry point: `cd code && gunicorn app:app`."""

from relay.factory import create_app

app = create_app()
