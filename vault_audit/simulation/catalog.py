"""Names, user agents and addresses that make simulated logs look like real ones."""

from __future__ import annotations

FIRST_NAMES = (
    "ada", "bruno", "chloe", "dmitri", "elena", "farid", "grace", "hiro", "ines", "jonas",
    "kemi", "liam", "maya", "noor", "oscar", "priya", "quinn", "rosa", "sven", "tara",
    "umar", "vera", "wei", "ximena", "yusuf", "zoe",
)  # fmt: skip

LAST_NAMES = (
    "alvarez", "becker", "chen", "dubois", "eriksen", "fischer", "garcia", "haddad",
    "ivanova", "jensen", "kowalski", "lopez", "moreau", "nakamura", "okafor", "petrov",
    "quintero", "rossi", "schmidt", "tanaka", "usman", "varga", "weber", "yilmaz",
)  # fmt: skip

WORKSPACE_NAMES = (
    "platform", "payments", "data", "mobile", "infra", "growth", "security", "search",
    "billing", "identity", "ml", "support",
)  # fmt: skip

DOMAIN = "northwind-labs.io"

# (label, user agent) per kind of device.
LAPTOP_AGENTS = (
    (
        "Chrome on macOS",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    ),
    (
        "Safari on macOS",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
    ),
    (
        "Firefox on Ubuntu",
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    ),
    (
        "Edge on Windows",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67",
    ),
)
DESKTOP_AGENTS = (
    (
        "Chrome on Windows",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36",
    ),
    (
        "Firefox on Windows",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    ),
)
PHONE_AGENTS = (
    (
        "Safari on iPhone",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
    ),
    (
        "Chrome on Android",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
    ),
)
# A browser no employee of the simulated company uses: the attacker's.
ATTACKER_AGENT = (
    "Chrome on Windows",
    "Mozilla/5.0 (Windows NT 10.0; WOW64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36 OPR/95.0.0.0",
)
KIOSK_AGENT = (
    "Chrome on ChromeOS",
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
)
# Clients that replay a copied token outside any browser.
TOOL_AGENTS = (
    "python-requests/2.32.3",
    "curl/8.7.1",
    "Go-http-client/2.0",
    "PostmanRuntime/7.39.0",
)
SERVICE_AGENT = "vault-rotation-job/1.4 (+node-fetch)"

OFFICE_PREFIXES = ("203.0.113.",)  # the company's NAT egress addresses
HOME_PREFIXES = ("73.162.", "98.207.", "24.5.", "67.180.", "76.102.")
CARRIER_PREFIXES = ("172.56.", "174.212.", "166.205.")
# Addresses handed out once each, to attackers and replaying clients only.
FRESH_PREFIXES = ("185.220.", "45.155.", "91.219.", "194.26.")
SERVICE_IP = "10.0.8.15"
