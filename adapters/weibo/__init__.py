"""Sina Weibo fan service (粉丝服务平台): the signed message push in, the reply API out."""
