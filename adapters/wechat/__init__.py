"""WeChat Official Account: the signed (and optionally AES-encrypted) callback in, the
customer-service message API out."""
