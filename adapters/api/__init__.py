"""The API channel: third-party platforms create contacts and post their customers'
messages over REST with a key an admin created; agents' replies reach them by a signed
webhook and by polling."""
