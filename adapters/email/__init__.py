"""Email: inbound by a built-in SMTP server and IMAP IDLE, outbound by SMTP, threaded."""
