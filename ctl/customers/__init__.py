"""Customers and their identities (phone, email, social ids...) across channels."""
