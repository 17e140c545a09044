"""LightFM trained on the warehouse; serves /api/recommendations."""

__version__ = "0.1.0"
