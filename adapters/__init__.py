"""Channel adapters (web chat, email, SMS, WeChat, Weibo, Douyin, API)."""
