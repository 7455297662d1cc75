"""Persistence: the SQL database (contacts, customers, agents...) and shared live state."""
