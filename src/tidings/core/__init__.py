"""Delivery core: models, message parameters, targeting, and the services that accept sends."""
