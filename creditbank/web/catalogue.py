"""Every string of the bank's own pages, in Chinese and English: the one translation catalogue.

Keys are stable identifiers; each maps to ``{"zh": ..., "en": ...}``. Templates call
``t("key")`` (or ``t("key", n=3)`` for ``str.format`` fields). A missing key or language is a
test failure (tests/web/test_i18n.py checks that every ``t("…")`` in a template is here, in
both languages), never a silent English fallback on a Chinese page.

Pages added on top of the web layer add their keys here.
"""

from __future__ import annotations

from typing import Final

MESSAGES: Final[dict[str, dict[str, str]]] = {
    # -- the bank ---------------------------------------------------------------------------
    "bank.name": {"zh": "学分银行", "en": "Learning Credit Bank"},
    "bank.tagline": {
        "zh": "记录学习成果，让每一份学分都可查可信",
        "en": "Learning outcomes on record, every credit verifiable",
    },
    "lang.switch": {"zh": "English", "en": "中文"},
    "lang.switch_label": {"zh": "切换到英文", "en": "Switch to Chinese"},
    "nav.home": {"zh": "首页", "en": "Home"},
    "nav.api": {"zh": "接口文档", "en": "API docs"},
    "nav.log": {"zh": "公开账本检查点", "en": "Public log checkpoint"},
    "nav.signin": {"zh": "学员与院校登录", "en": "Sign in: workers and institutions"},
    # -- home page --------------------------------------------------------------------------
    "home.title": {"zh": "学分银行 · 验证学习成果", "en": "Learning Credit Bank · verify learning"},
    "home.intro": {
        "zh": "院校、开放大学、工匠学院、培训中心和企业大学把在职学习者的课程学分、技能证书、"
        "培训学时和获奖记录存入学分银行。每条记录由发证机构用自己的密钥签名，写入只增不改、"
        "公开可审计的账本。",
        "en": "Colleges, open universities, craftsman academies, training centres and enterprise "
        "colleges deposit the course credits, skill certificates, training hours and awards of "
        "working learners. Each record is signed with the institution's own key and written to "
        "an append-only ledger that anyone can audit.",
    },
    "verify.heading": {"zh": "验证成绩单或证书", "en": "Verify a transcript or certificate"},
    "verify.label": {"zh": "验证码", "en": "Verification code"},
    "verify.help": {
        "zh": "输入成绩单或证书上的 16 位验证码，或用手机扫描其二维码。",
        "en": "Type the 16-character code printed on the transcript or certificate, or scan "
        "its QR code with your phone.",
    },
    "verify.submit": {"zh": "验证", "en": "Verify"},
    "verify.empty": {"zh": "请输入验证码。", "en": "Please enter a verification code."},
    "who.heading": {"zh": "为谁服务", "en": "Who it is for"},
    "who.workers.title": {"zh": "在职学习者", "en": "Workers"},
    "who.workers.text": {
        "zh": "在手机上查看自己的全部学习记录，申请学分转换，生成成绩单并分享验证码。",
        "en": "See all your learning records on your phone, apply for credit conversion, "
        "create transcripts and share a verification code.",
    },
    "who.employers.title": {"zh": "用人单位", "en": "Employers"},
    "who.employers.text": {
        "zh": "扫码或输入验证码，一秒看到成绩单是否真实、有效、未被撤销，以及每一项检查。",
        "en": "Scan the QR code or type the code: see in a second whether a transcript is "
        "genuine, current and unrevoked, and every check behind the answer.",
    },
    "who.institutions.title": {"zh": "教育培训机构", "en": "Institutions"},
    "who.institutions.text": {
        "zh": "用本机构的密钥签名并上传成绩；监视账本中以本机构名义出现的每一条记录。",
        "en": "Sign and post results with your own key; watch the log for anything posted "
        "in your name.",
    },
    "trust.heading": {"zh": "为什么可信", "en": "Why you can trust it"},
    "trust.text": {
        "zh": "连银行自己也无法伪造记录：签名来自发证机构，账本的每个版本都有签名检查点，"
        "任何人都可以离线复核。",
        "en": "Not even the bank can forge a record: signatures come from the institutions, "
        "every version of the ledger has a signed checkpoint, and anyone can re-check it "
        "offline.",
    },
    # -- errors -----------------------------------------------------------------------------
    "error.code_label": {"zh": "错误代码", "en": "Error code"},
    "error.back_home": {"zh": "返回首页", "en": "Back to the home page"},
    "error.retry_after": {
        "zh": "请在 {seconds} 秒后重试。",
        "en": "Please try again in {seconds} seconds.",
    },
    "error.400.title": {"zh": "请求有误", "en": "Bad request"},
    "error.400.text": {"zh": "这个请求无法处理。", "en": "This request could not be handled."},
    "error.401.title": {"zh": "需要登录", "en": "Sign-in required"},
    "error.401.text": {"zh": "请先登录再打开此页面。", "en": "Please sign in to open this page."},
    "error.403.title": {"zh": "无权访问", "en": "Not allowed"},
    "error.403.text": {
        "zh": "您没有打开此页面的权限。",
        "en": "You are not allowed to open this page.",
    },
    "error.404.title": {"zh": "页面不存在", "en": "Page not found"},
    "error.404.text": {
        "zh": "找不到这个地址。请检查链接或验证码是否输入正确。",
        "en": "There is nothing at this address. Check the link or the code you typed.",
    },
    "error.405.title": {"zh": "不支持的操作", "en": "Method not allowed"},
    "error.405.text": {
        "zh": "此地址不支持这种请求方式。",
        "en": "This address does not accept this kind of request.",
    },
    "error.413.title": {"zh": "内容过大", "en": "Too large"},
    "error.413.text": {"zh": "提交的内容超过了大小限制。", "en": "What was sent is too large."},
    "error.422.title": {"zh": "无法接受", "en": "Not accepted"},
    "error.422.text": {
        "zh": "请求格式正确，但内容未通过检查。",
        "en": "The request is well formed but its content was refused.",
    },
    "error.429.title": {"zh": "请求过于频繁", "en": "Too many requests"},
    "error.429.text": {
        "zh": "来自您网络地址的请求太多了，这是为了保护验证码的安全。",
        "en": "Too many requests came from your network address; this protects "
        "verification codes from guessing.",
    },
    "error.500.title": {"zh": "服务器出错", "en": "Something went wrong"},
    "error.500.text": {
        "zh": "服务器内部出错，我们已记录此问题。请稍后再试。",
        "en": "The server failed on our side; the problem is logged. Please try again later.",
    },
    "error.503.title": {"zh": "服务暂时不可用", "en": "Temporarily unavailable"},
    "error.503.text": {
        "zh": "服务暂时无法访问，请稍后再试。",
        "en": "The service is unavailable for a moment. Please try again shortly.",
    },
    "error.other.title": {"zh": "出错了", "en": "Error"},
    "error.other.text": {"zh": "请求未能完成。", "en": "The request could not be completed."},
    # -- institution console: log watch (the checks of ``creditbank monitor``) ---------------
    "watch.title": {"zh": "账本监视", "en": "Log watch"},
    "watch.intro": {
        "zh": "与 creditbank monitor 相同的检查，在银行保存的账本上为本机构运行：以本机构名义的条目"
        "是否由其当时有效的登记密钥签名、关于本机构的登记变更、已发布检查点的签名与一致性。",
        "en": "The checks of creditbank monitor, run for us over the log the bank stores: "
        "entries in our name signed by one of our keys valid at their time, registry changes "
        "about us, and the signatures and consistency of the published checkpoints.",
    },
    "watch.independent": {
        "zh": "这里信任银行自己的数据库；独立核查请在本机构运行 creditbank monitor。",
        "en": "This view trusts the bank's own database; for an independent check run "
        "creditbank monitor at the institution.",
    },
    "watch.no_alerts": {"zh": "没有警报。", "en": "No alerts."},
    "watch.alerts": {"zh": "警报：{n} 条", "en": "Alerts: {n}"},
    "watch.summary": {
        "zh": "账本 {size} 条；以本机构名义 {claimed} 条，其中 {verified} 条签名已核验；"
        "检查点 {checkpoints} 个。",
        "en": "Log of {size} entries; {claimed} in our name, {verified} of them with a "
        "verified signature; {checkpoints} checkpoints.",
    },
    "watch.where_index": {"zh": "条目 #{n}", "en": "entry #{n}"},
    "watch.where_checkpoint": {"zh": "检查点 {n}", "en": "checkpoint {n}"},
    "watch.baseline": {"zh": "登记（基线）", "en": "Registration (baseline)"},
}
