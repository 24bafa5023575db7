"""Mi Push error codes used by the sender API, with the description each carries."""

from __future__ import annotations

OK = 0
SYSTEM_ERROR = 10001
SYSTEM_BUSY = 10002
PARAM_ERROR = 10008
MISSING_PARAM = 10016
ILLEGAL_PARAM = 10017
API_NOT_FOUND = 10020
INVALID_DEVICE = 10029
METHOD_NOT_ALLOWED = 10021
ACCOUNT_BLOCKED = 10031  # the app's developer account is suspended or terminated
TERMS_NOT_ACCEPTED = 10036  # the developer has not accepted the terms in force
ILLEGAL_TOPIC = 20209
SUBSCRIBE_FAILED = 20215
UNSUBSCRIBE_FAILED = 20216
SEND_FAILED = 20301
DELETE_BROADCAST_FAILED = 20315
AUTH_FAILED = 21301
BAD_PACKAGE = 22022
REGION_NOT_SERVED = 22040  # Tidings: the app's region is served by other nodes, not this one
CHANNEL_MISMATCH = 27001
CONTENT_TOO_LONG = 65009
TOPIC_TOO_LONG = 65010
ALIAS_EMPTY = 65012
TOPIC_EMPTY = 65013
TOO_MANY_EXTRAS = 65014
EXTRA_TOO_LONG = 65015
MESSAGE_NOT_FOUND = 65028
TOO_MANY_TOPICS = 65035
CONTENT_REJECTED = 26010  # Tidings: the content review refused the message
QUOTA_EXCEEDED = 200001
RATE_LIMITED = 10027
CALLBACK_PARAM_TOO_LONG = 65036
CALLBACK_URL_TOO_LONG = 65037
BAD_CALLBACK_URL = 65038

DESCRIPTIONS = {
    OK: "成功",
    SYSTEM_ERROR: "系统错误",
    SYSTEM_BUSY: "系统繁忙",
    PARAM_ERROR: "参数错误",
    MISSING_PARAM: "缺少必填参数",
    ILLEGAL_PARAM: "非法参数值",
    API_NOT_FOUND: "请求的API不存在",
    INVALID_DEVICE: "无效设备",
    METHOD_NOT_ALLOWED: "HTTP方法不支持",
    ACCOUNT_BLOCKED: "开发者账号已停用",
    TERMS_NOT_ACCEPTED: "未同意当前服务条款",
    ILLEGAL_TOPIC: "非法topic",
    SUBSCRIBE_FAILED: "订阅topic失败",
    UNSUBSCRIBE_FAILED: "取消订阅topic失败",
    SEND_FAILED: "发送消息失败",
    DELETE_BROADCAST_FAILED: "删除广播消息失败",
    AUTH_FAILED: "认证失败",
    BAD_PACKAGE: "非法的包名",
    REGION_NOT_SERVED: "应用所在区域不由本节点服务",
    CHANNEL_MISMATCH: "channel相关信息不匹配",
    CONTENT_TOO_LONG: "消息内容过长",
    TOPIC_TOO_LONG: "topic过长",
    ALIAS_EMPTY: "别名为空",
    TOPIC_EMPTY: "topic为空",
    TOO_MANY_EXTRAS: "键值对过多",
    EXTRA_TOO_LONG: "键值对过长",
    MESSAGE_NOT_FOUND: "消息不存在",
    TOO_MANY_TOPICS: "topic过多",
    CONTENT_REJECTED: "消息内容审核未通过",
    QUOTA_EXCEEDED: "超过当日配额",
    RATE_LIMITED: "超过请求频率限制",
    CALLBACK_PARAM_TOO_LONG: "回执参数过长",
    CALLBACK_URL_TOO_LONG: "回执地址过长",
    BAD_CALLBACK_URL: "非法的回执地址",
    65008: "别名过长",
    65016: "用户账号为空",
    65017: "用户账号过长",
}


def describe(code: int) -> str:
    return DESCRIPTIONS.get(code, "错误")
