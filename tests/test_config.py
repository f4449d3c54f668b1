"""Operator config: every problem reported with its location; the CLI refuses broken files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gateway.cli import main
from gateway.config import ConfigError, load_config, parse_config

from .conftest import API_KEY, WA, base_config, config_from

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "WA_MAIN_TOKEN",
        "WA_APP_SECRET",
        "WA_VERIFY_TOKEN",
        "ORDERS_API_KEY",
        "ORDERS_WEBHOOK_SECRET",
        "FB_PAGE_TOKEN",
        "FB_APP_SECRET",
        "FB_VERIFY_TOKEN",
        "TWILIO_AUTH_TOKEN",
        "LINE_CHANNEL_SECRET",
        "LINE_CHANNEL_TOKEN",
        "VIBER_AUTH_TOKEN",
    ):
        monkeypatch.setenv(name, f"example-value-for-{name.lower()}")
    config = load_config(ROOT / "config.example.yaml")
    assert [(c.id, c.type) for c in config.channels] == [
        ("wa-main", "whatsapp"),
        ("fb-page", "messenger"),
        ("sms-us", "sms"),
        ("line-jp", "line"),
        ("viber-bot", "viber"),
    ]
    assert config.storage.backend == "sqlite"


def test_env_vars_are_substituted_and_kept_secret(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["channels"][0]["app_secret"] = "${WA_SECRET}"
    config = parse_config(data, "c.yaml", env={"WA_SECRET": "from-the-environment"})
    assert config.channels[0].app_secret.get_secret_value() == "from-the-environment"  # type: ignore[attr-defined]
    assert "from-the-environment" not in repr(config)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["channels"][0].update(app_secret="${WA_SECRET}"),
            "channels[0].app_secret: environment variable WA_SECRET is not set",
        ),
        (
            lambda d: d["channels"][0].pop("access_token"),
            "channels[0].access_token: 'access_token' is required but not given",
        ),
        (
            lambda d: d["channels"][0].update(type="telegram"),
            "channels[0]: unknown channel type 'telegram' (known: line, messenger, sms, viber,",
        ),
        (
            lambda d: d["channels"].append({**d["channels"][0], "phone_number_id": "2"}),
            "channels[1].id: 'wa-main' is also channels[0]'s id",
        ),
        (
            lambda d: d["channels"].append({**d["channels"][0], "id": "wa-copy"}),
            "channels[1].phone_number_id: '106540352242922' is also channels[0]'s phone_number_id",
        ),
        (
            lambda d: d["backends"].extend(
                [{"id": "b", "url": "http://a", "secret": "s" * 16}] * 2
            ),
            "backends[1].id: 'b' is also backends[0]'s id",
        ),
        (
            lambda d: d["api_keys"].append({**d["api_keys"][0], "name": "billing"}),
            "api_keys[1].key: the same key as api_keys[0]'s: give each client its own",
        ),
        (
            lambda d: d.update(public_url="gateway.example.com"),
            "public_url: must be a URL starting with http:// or https://",
        ),
        (
            lambda d: d["api_keys"][0].update(key="short"),
            "api_keys[0]: key must be at least 16 characters",
        ),
        (
            lambda d: d.update(storage={"backend": "postgres"}),
            "storage: dsn is required when backend is postgres",
        ),
        (
            lambda d: d.update(server={"busy_webhooks_per_second": 0}),
            "server.busy_webhooks_per_second: must be greater than 0",
        ),
        (
            lambda d: d["storage"].update(retention={"days": 0}),
            "storage.retention.days: must be greater than 0",
        ),
        (
            lambda d: d["storage"].update(retention={"batch_size": 0}),
            "storage.retention.batch_size: must be at least 1",
        ),
        (
            lambda d: d["storage"].update(retention={"keep": "forever"}),
            "storage.retention.keep: unknown setting 'keep'",
        ),
        (
            lambda d: d["channels"][0].update(colour="blue"),
            "channels[0].colour: unknown setting 'colour'",
        ),
        (
            lambda d: d.update(conversations={"default_controller": "desk"}),
            "conversations.default_controller: no backend 'desk' (backends: none configured)",
        ),
        (
            lambda d: d.update(conversations={"provider_groups_owner": "order"}),
            "conversations.provider_groups_owner: 'order' is not the name of an API key"
            " ('orders'); did you mean 'orders'?",
        ),
        (
            lambda d: d.update(routing={"channel_order": {"JPN": ["line", "sms"]}}),
            "routing.channel_order.JPN: 'JPN' is not an ISO 3166-1 alpha-2 country code",
        ),
        (
            lambda d: d.update(routing={"channel_order": {"XX": ["sms"]}}),
            "routing.channel_order.XX: 'XX' is not an ISO 3166-1 alpha-2 country code",
        ),
        (
            lambda d: d.update(routing={"channel_order": {"UA": ["viber", "smss"]}}),
            "routing.channel_order.UA[1]: 'smss' is neither a channel type nor a channel id;"
            " did you mean 'sms'?",
        ),
        (
            lambda d: d.update(routing={"delivery_timeout_seconds": 0}),
            "routing.delivery_timeout_seconds: must be greater than 0",
        ),
    ],
)
def test_problems_name_their_location(tmp_path: Path, mutate: object, expected: str) -> None:
    data = base_config(tmp_path)
    mutate(data)  # type: ignore[operator]
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "c.yaml", env={})
    assert any(expected in p for p in caught.value.problems), caught.value.problems


def test_channel_order_names_types_and_instances(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["routing"] = {
        "channel_order": {"JP": ["line", "sms"], "US": ["wa-main"], "default": ["whatsapp"]},
        "failover": True,
        "delivery_timeout_seconds": 600,
    }
    routing = parse_config(data, "c.yaml", env={}).routing
    assert routing.channel_order["US"] == ["wa-main"]
    assert (routing.failover, routing.delivery_timeout_seconds) == (True, 600.0)


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["channels"][0]["app_secret"] = "${A}"
    data["channels"][0]["verify_token"] = "${B}"
    data["server"] = {"port": 70000}
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "c.yaml", env={})
    assert len(caught.value.problems) == 3


def test_repeated_ids_are_listed_with_the_other_problems(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["channels"].append({**data["channels"][0], "phone_number_id": "2"})
    data["backends"] = [{"id": "b", "url": "http://a", "secret": "s" * 16}] * 2
    data["api_keys"].append({**data["api_keys"][0], "name": "billing"})
    data["server"] = {"port": 70000}
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "c.yaml", env={})
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "channels[1].id",
        "backends[1].id",
        "api_keys[1].key",
        "server.port",
    ]
    assert API_KEY not in str(caught.value)  # a repeated key is named by where, never shown


def test_check_config_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, base_config(tmp_path))
    assert main(["check-config", str(good)]) == 0
    assert "OK (1 channel(s)" in capsys.readouterr().out

    data = base_config(tmp_path)
    data["channels"][0]["app_secret"] = "${SURELY_NOT_SET_WA_SECRET}"
    bad = write(tmp_path, data)
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert (
        f"{bad}: line 8, column 15: channels[0].app_secret: "
        "environment variable SURELY_NOT_SET_WA_SECRET is not set; set it, or give a default: "
        "${SURELY_NOT_SET_WA_SECRET:-...}"
    ) in err
    assert WA["access_token"] not in err


def test_invalid_yaml_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(write(tmp_path, "channels: [unclosed"))]) == 1
    assert "invalid YAML" in capsys.readouterr().err
    assert main(["check-config", str(tmp_path / "nope.yaml")]) == 1
    assert "cannot read file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b"public_url: https://a.example.com\nstorage: {}\npublic_url: https://b.example.com\n",
            "line 3, column 1: invalid YAML ('public_url' is given twice in one mapping "
            "(first on line 1))",
        ),
        (b"public_url: caf\xe9\n", "not UTF-8 text: byte 0xe9 at offset 15"),
        (
            # Nine aliases per level, seven levels: a few lines that expand to 43 million values.
            b"a: &a [x, x, x, x, x, x, x, x, x]\n"
            + b"".join(
                f"{b}: &{b} [*{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}]\n".encode()
                for a, b in zip("abcdefg", "bcdefgh", strict=True)
            ),
            "(top level): more than 100,000 values (aliases expanding?)",
        ),
    ],
    ids=["duplicate key", "not UTF-8", "alias bomb"],
)
def test_a_config_file_that_cannot_be_read_safely_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, expected: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    assert main(["check-config", str(path)]) == 1
    assert capsys.readouterr().err.splitlines()[0] == f"{path}: {expected}"


def test_merged_keys_may_still_be_overridden(tmp_path: Path) -> None:
    """`<<` merges are not duplicates: a key given after one overrides it, as YAML intends."""
    data = base_config(tmp_path)
    first = data.pop("channels")[0]
    text = yaml.safe_dump(data) + f"channels:\n  - &wa {json.dumps(first)}\n"
    text += "  - <<: *wa\n    id: wa-second\n    phone_number_id: '200000000000001'\n"
    config = load_config(write(tmp_path, text))
    assert [c.id for c in config.channels] == [first["id"], "wa-second"]


def test_serve_refuses_a_broken_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = base_config(tmp_path)
    del data["channels"][0]["app_secret"]
    with pytest.raises(SystemExit) as caught:
        main(["serve", "--config", str(write(tmp_path, data))])
    assert caught.value.code == 2
    assert (
        "channels[0].app_secret: 'app_secret' is required but not given" in capsys.readouterr().err
    )


def test_capabilities_narrow_a_channel_instance(tmp_path: Path) -> None:
    from gateway.app import build_adapters

    data = base_config(tmp_path)
    data["channels"][0]["capabilities"] = {"media": ["image"], "contacts": False, "text_max": 99999}
    adapter = build_adapters(parse_config(data, "c.yaml"))["wa-main"]
    assert adapter.profile.media == frozenset({"image"})
    assert adapter.profile.contacts is False
    assert adapter.profile.text_max == 4096  # never widened


def test_unknown_capability_is_named(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["channels"][0]["capabilities"] = {"holograms": True}
    with pytest.raises(ConfigError) as error:
        parse_config(data, "c.yaml")
    assert "channels[0].capabilities.holograms: unknown setting 'holograms'" in str(error.value)


@pytest.mark.parametrize(
    ("carousel", "problem"),
    [
        ({"min_cards": 1}, "'min_cards' cannot be narrowed; these limits can: "),
        ({"media_required": 0}, "'media_required' cannot be narrowed"),
        ({"max_cards": 0}, "max_cards must be at least 1 (turn the feature off with false)"),
    ],
)
def test_capabilities_never_widen_through_a_minimum_or_a_rule(
    tmp_path: Path, carousel: dict[str, int], problem: str
) -> None:
    data = base_config(tmp_path)
    data["channels"][0]["capabilities"] = {"carousel": carousel}
    with pytest.raises(ConfigError) as error:
        parse_config(data, "c.yaml")
    assert "channels[0].capabilities.carousel" in str(error.value)
    assert problem in str(error.value)


def test_capability_limits_are_lowered_never_raised(tmp_path: Path) -> None:
    from gateway.app import build_adapters

    data = base_config(tmp_path)
    data["channels"][0]["capabilities"] = {"carousel": {"max_cards": 4, "title_max": 500}}
    adapter = build_adapters(parse_config(data, "c.yaml"))["wa-main"]
    assert adapter.profile.carousel is not None
    assert adapter.profile.carousel.max_cards == 4
    assert adapter.profile.carousel.title_max == 60  # WhatsApp's own, not widened
    assert adapter.profile.carousel.min_cards == 2


def test_a_limit_the_channel_does_not_have_stays_absent() -> None:
    from gateway.downgrade.profile import ButtonsProfile, Profile

    # No header on these buttons (header_max None): lowering it must not invent one.
    buttons = ButtonsProfile(max_actions=3, label_max=20, text_max=640)
    profile = Profile(channel="x", text_max=640, buttons=buttons)
    narrowed = profile.narrowed({"buttons": {"header_max": 5, "max_actions": 2}})
    assert narrowed.buttons is not None
    assert narrowed.buttons.header_max is None and narrowed.buttons.max_actions == 2


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://gw:Sup3r-Secret-pw@db.internal:5432/gateway",
        "host=db.internal user=gw password=Sup3r-Secret-pw dbname=gateway",
        "host=db.internal password='Sup3r-Secret-pw' dbname=gateway",
    ],
)
def test_the_dsn_password_is_a_secret_of_its_own(tmp_path: Path, dsn: str) -> None:
    """Drivers may quote the password without the rest of the DSN."""
    data = base_config(tmp_path)
    data["storage"] = {"backend": "postgres", "dsn": dsn}
    assert "Sup3r-Secret-pw" in parse_config(data, "c.yaml", env={}).secrets()


MISTAKES = """\
public_url: https://gateway.example.com
servr:
  port: 8080
api_keys:
  - name: orders
    key: ${ORDERS_API_KEYS}
channels:
  - id: wa-main
    type: whatsap
  - id: line-jp
    type: line
    chanel_secret: abc
    channel_access_token: ${LINE_TOKEN:-a-default}
storage:
  backend: postgress
  dsn: postgresql://gateway@db/gateway
"""


def test_check_config_points_at_each_mistake_and_suggests_a_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERS_API_KEY", "k" * 20)  # the name the file misspelt
    path = write(tmp_path, MISTAKES)
    assert main(["check-config", str(path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{path}: {problem}"
        for problem in [
            "line 2, column 1: servr: unknown setting 'servr'; did you mean 'server'?",
            "line 5, column 5: api_keys[0]: key must be at least 16 characters",
            "line 6, column 10: api_keys[0].key: environment variable ORDERS_API_KEYS is not "
            "set; did you mean 'ORDERS_API_KEY'?",
            "line 9, column 11: channels[0]: unknown channel type 'whatsap'; did you mean "
            "'whatsapp'? (known: line, messenger, sms, viber, web, wechat, whatsapp)",
            "line 10, column 5: channels[1].channel_secret: 'channel_secret' is required but "
            "not given",
            "line 12, column 5: channels[1].chanel_secret: unknown setting 'chanel_secret'; "
            "did you mean 'channel_secret'?",
            "line 15, column 12: storage.backend: 'postgress' is not one of sqlite, postgres; "
            "did you mean 'postgres'?",
            "7 problem(s)",
        ]
    ]


def test_a_mistake_inside_a_merged_mapping_points_into_the_file(tmp_path: Path) -> None:
    """An entry built with `<<` from an anchor: its inherited keys are found where written."""
    data = base_config(tmp_path)
    first = data.pop("channels")[0]
    text = yaml.safe_dump(data) + f"channels:\n  - &wa {json.dumps({**first, 'colr': 1})}\n"
    text += "  - <<: *wa\n    id: wa-second\n"
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    first_line = len(yaml.safe_dump(data).splitlines()) + 2
    written, inherited = (p.split(": ")[0] for p in caught.value.problems if "colr" in p)
    assert written == inherited  # both at the anchor's `colr`, where it is written
    assert written.startswith(f"line {first_line}, column ")


def test_provider_groups_belong_to_the_key_named_else_the_first(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["api_keys"].append({"name": "desk", "key": "desk-key-0123456789"})
    assert parse_config(data, "c.yaml", env={}).inbound_routing().provider_groups_owner == "orders"
    data["conversations"] = {"provider_groups_owner": "desk", "route_by_recency_seconds": 60}
    routing = parse_config(data, "c.yaml", env={}).inbound_routing()
    assert (routing.provider_groups_owner, routing.recency_seconds) == ("desk", 60.0)


def test_postgres_connections_are_configured_and_bounded(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["storage"] = {"backend": "postgres", "dsn": "postgresql://x@127.0.0.1/db"}
    assert config_from(data).storage.connections == 4
    data["storage"]["connections"] = 8
    assert config_from(data).storage.connections == 8
    data["storage"]["connections"] = 0
    with pytest.raises(ConfigError, match="connections"):
        config_from(data)
