"""The demo's knowledge base: a few articles and team replies in English and Chinese,
seeded into an empty knowledge base when the controller starts (setting
`knowledge_demo`), as the demo IVR flows are published from ivr_flows/."""

from __future__ import annotations

from typing import Any

# ruff: noqa: RUF001 - Chinese text uses full-width punctuation

ARTICLES: list[dict[str, Any]] = [
    {"title": "Refund policy", "language": "en", "tags": ["refund", "billing"],
     "status": "published", "body": (
         "Customers may ask for a refund within **30 days** of delivery.\n\n"
         "1. Find the order (order number or the customer's phone).\n"
         "2. Check the item was returned, or is a digital product not downloaded.\n"
         "3. Refund to the original payment method; cards take 3-5 business days.\n\n"
         "Refunds over $500 need a supervisor's approval: create a ticket in billing.")},
    {"title": "Where is my order?", "language": "en", "tags": ["order", "shipping"],
     "status": "published", "body": (
         "Orders ship within 24 hours. Standard shipping takes 3-7 days, express 1-2.\n\n"
         "Give the tracking number from the order; if tracking has not moved for 5 days, "
         "open a ticket in service so the carrier is asked.")},
    {"title": "Reset a password", "language": "en", "tags": ["account", "login"],
     "status": "published", "body": (
         "Never ask for the customer's password. Send the reset link from the account "
         "page; it expires after 1 hour. Locked after 5 failed logins: unlock after "
         "checking the customer's identity (email or phone on the account).")},
    {"title": "退款政策", "language": "zh-CN", "tags": ["退款", "账单"],
     "status": "published", "body": (
         "客户可在收货后 **30 天**内申请退款。\n\n"
         "1. 查询订单（订单号或客户手机号）。\n"
         "2. 确认商品已退回。\n"
         "3. 原路退款，银行卡 3-5 个工作日到账。\n\n"
         "超过 3000 元的退款需主管审批：在账单部门创建工单。")},
    {"title": "查询订单物流", "language": "zh-CN", "tags": ["订单", "物流"],
     "status": "published", "body": (
         "订单 24 小时内发货，普通快递 3-7 天送达，加急 1-2 天。\n\n"
         "告诉客户物流单号；物流 5 天未更新时，在客服部门创建工单联系快递公司。")},
    {"title": "重置密码", "language": "zh-CN", "tags": ["账户", "登录"],
     "status": "published", "body": (
         "不要询问客户的密码。在账户页面发送重置链接，链接 1 小时内有效。"
         "连续 5 次登录失败会锁定账户：核实身份后解锁。")},
]

REPLIES: list[dict[str, Any]] = [
    {"title": "Greeting", "shortcut": "/hello", "language": "en",
     "body": "Hello {{ customer.name or 'there' }}, this is {{ agent.name }}. "
             "How can I help you today?"},
    {"title": "Refund started", "shortcut": "/refund", "language": "en",
     "body": "Hi {{ customer.name or 'there' }}, your refund has been started. It reaches "
             "your card within 3-5 business days."},
    {"title": "Ticket number", "shortcut": "/ticket", "language": "en",
     "body": "I have noted this as ticket #{{ ticket.number }}; we will keep you posted."},
    {"title": "问候", "shortcut": "/hello", "language": "zh-CN",
     "body": "{{ customer.name or '您' }}好，我是客服{{ agent.name }}，请问有什么可以帮您？"},
    {"title": "退款已受理", "shortcut": "/refund", "language": "zh-CN",
     "body": "{{ customer.name or '您' }}好，您的退款已受理，3-5 个工作日内原路退回。"},
    {"title": "工单编号", "shortcut": "/ticket", "language": "zh-CN",
     "body": "已为您登记工单 #{{ ticket.number }}，处理进展会及时通知您。"},
]
