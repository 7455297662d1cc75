"""The security headers of the HTML pages ctl serves (the desk, its login, the chat demo).

The Content-Security-Policy allows scripts and styles only as files from ctl itself (no
inline script, no eval): an injected <script> or onclick= does not run, even where an
escaping mistake let it into the page. The desk connects to ctl (REST, its websocket) and
to Asterisk's SIP websocket, which may be another origin (asterisk.webrtc_url).
"""

from __future__ import annotations

from urllib.parse import urlsplit


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def desk_policy(sip_ws_url: str) -> str:
    return "; ".join([
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        # 'self' covers ws(s):// of the page's own host and port (CSP level 3).
        f"connect-src 'self' {_origin(sip_ws_url)}",
        "media-src 'self'",  # recordings (/api/v1/contacts/.../recordings/...)
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ])


# The chat widget is made to be embedded on other sites, where it brings its own styles
# inline (one file to include): its demo page allows inline styles, never scripts.
CHAT_POLICY = "; ".join([
    "default-src 'none'", "script-src 'self'", "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:", "connect-src 'self'", "form-action 'self'", "base-uri 'none'",
])


def page_headers(policy: str) -> dict[str, str]:
    """Pages may hold a CSRF token: no cache keeps them, no other site frames them."""
    return {"Content-Security-Policy": policy, "Cache-Control": "no-store",
            "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
            "X-Content-Type-Options": "nosniff"}
