"""Golden rendering: every content type on one channel, engine + adapter, against a fixture file.

Each channel keeps `tests/fixtures/<type>/golden.json`: for every message in
`tests/fixtures/messages/*.json`, the exact provider requests, the downgrades and the numbered
choices. `check_golden` compares a channel against its file; `python -m tests.golden TYPE`
prints what the current code produces (to review by hand, never to paste in blindly).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from adapters import ADAPTERS
from adapters.base import Adapter, ChannelConfig, SendContext, SendError
from gateway.downgrade import PlanError, plan
from gateway.router.form_questions import intro, question
from gateway.schema import CONTENT_ADAPTER
from gateway.schema.content import FormContent, TextContent

FIXTURES = Path(__file__).parent / "fixtures"
MESSAGES = {
    p.stem: json.loads(p.read_text()) for p in sorted((FIXTURES / "messages").glob("*.json"))
}
NOW = 1_700_000_000.0
# Inside every window, no reply token: the plain send path of each channel.
CONTEXT = SendContext(
    "msg_golden", "golden-recipient", now=NOW, last_inbound_at=NOW - 60,
    status_callback_url="https://gateway.example.com/webhooks/golden",
)  # fmt: skip


def render_all(
    adapter: Adapter, message: dict[str, Any], context: SendContext = CONTEXT
) -> dict[str, Any]:
    content = CONTENT_ADAPTER.validate_python(message)
    try:
        if isinstance(content, FormContent):  # a form goes as its intro and first question
            parts = plan(TextContent(text=intro(content)), adapter.profile).parts
            planned = plan(question(content, 0), adapter.profile)
            parts += planned.parts
        else:
            planned = plan(content, adapter.profile)
            parts = planned.parts
        requests = adapter.render_parts(parts, context)
    except (PlanError, SendError) as exc:
        return {"error": str(exc)}
    return {
        "requests": [
            {
                k: v
                for k, v in (
                    ("method", r.method),
                    ("path", r.path),
                    ("json", r.json),
                    ("form", r.form),
                    ("headers", r.headers or None),
                )
                if v is not None
            }
            for r in requests
        ],
        "downgrades": [str(d) for d in planned.downgrades],
        "choices": [[c.number, c.title, c.payload] for c in planned.choices],
    }


def golden_cases(channel_type: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / channel_type / "golden.json").read_text()))


def check_golden(adapter: Adapter, name: str) -> None:
    expected = golden_cases(adapter.type)[name]
    assert render_all(adapter, MESSAGES[name]) == expected


def main(channel_type: str, config: ChannelConfig) -> None:
    adapter = ADAPTERS[channel_type](config)
    print(
        json.dumps(
            {n: render_all(adapter, m) for n, m in MESSAGES.items()}, indent=2, ensure_ascii=False
        )
    )


if __name__ == "__main__":
    from gateway.preview import placeholder_config

    kind = sys.argv[1]
    main(kind, placeholder_config(ADAPTERS[kind].config_model, kind))
