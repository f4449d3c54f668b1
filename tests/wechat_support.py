"""What the WeChat tests share: adapters in plain and safe mode, with the credentials of
WeChat's own encryption example (AppID, Token and EncodingAESKey of the Technical Plan)."""

from __future__ import annotations

from typing import Any

from adapters.wechat import WeChatAdapter, WeChatConfig

APP_ID = "wxb11529c136998cb6"
APP_SECRET = "wechat-app-secret-0123456789"
TOKEN = "pamtest"
ENCODING_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def make_adapter(safe: bool = False, **config: Any) -> WeChatAdapter:
    keys = {"encoding_aes_key": ENCODING_AES_KEY} if safe else {}
    return WeChatAdapter(
        WeChatConfig(
            id="wechat-main",
            type="wechat",
            app_id=APP_ID,
            app_secret=APP_SECRET,
            token=TOKEN,
            **keys,
            **config,
        )
    )
