"""The HTTP service: the JSON API under ``/api/v1`` (OpenAPI at ``/docs``)."""

from rest_api.app import create_app, serve

__all__ = ["create_app", "serve"]
