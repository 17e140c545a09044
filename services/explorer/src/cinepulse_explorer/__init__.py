"""Streamlit data explorer over the warehouse and the recommender."""

__version__ = "0.1.0"
