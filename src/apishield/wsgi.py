"""The WSGI middleware: ``app.wsgi_app = ApishieldMiddleware(app.wsgi_app, policy=...)``."""

from apishield.adapters.wsgi import ApishieldMiddleware

__all__ = ["ApishieldMiddleware"]
