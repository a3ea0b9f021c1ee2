"""The SpyCloud relay for Cisco XDR. `relay.factory.create_app` builds the
Flask app; this package face stays light, so the gunicorn master can read
`relay.settings` without importing Flask, requests or redis."""
