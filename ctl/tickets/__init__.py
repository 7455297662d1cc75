"""Tickets (work orders): what cannot be solved during a contact, followed to its end."""
