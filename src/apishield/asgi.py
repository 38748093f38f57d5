"""The ASGI middleware: ``app = ApishieldMiddleware(app, policy="policy.yaml")``."""

from apishield.adapters.asgi import ApishieldMiddleware

__all__ = ["ApishieldMiddleware"]
