"""Operator configuration: one YAML file, secrets from `${ENV_VAR}`, validated by pydantic.

`load_config` returns a `GatewayConfig` or raises `ConfigError` listing every problem with its
location (`channels[2].app_secret: environment variable WA_SECRET is not set`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import urllib.parse
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from adapters import ADAPTERS, CHANNEL_CONFIGS
from adapters.base import ChannelConfig
from gateway.config_problems import did_you_mean, located, model_at, plain
from gateway.router.communities import phrase
from gateway.router.conversations import JOINED_TEMPLATE, LEFT_TEMPLATE, RoutingPolicy
from gateway.router.countries import ISO_COUNTRIES
from gateway.schema.broadcasts import BROADCAST_EVENT_TYPES
from gateway.schema.communities import CommunitySettings
from gateway.schema.conversations import CONVERSATION_EVENT_TYPES
from gateway.schema.errors import field_path
from gateway.schema.users import USER_EVENT_TYPES
from gateway.signing import standard_key

EVENT_TYPES = (
    "message",
    "postback",
    "status",
    "reaction",
    "subscription",
    "referral",
    "system",
    "unsupported",
)

if TYPE_CHECKING:
    AnyChannelConfig = ChannelConfig
else:
    from typing import Union

    AnyChannelConfig = Annotated[Union[CHANNEL_CONFIGS], Field(discriminator="type")]  # noqa: UP007


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    # A body still arriving after this is answered 408 and its connection closed (gateway/http/request_body.py):
    # providers send theirs in milliseconds, and give up on us sooner anyway (Twilio's total
    # time is 15 s: ../shared/reference/providers.md §3.2).
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    # From a request's first byte to the end of its headers, at most; past it the connection
    # is closed (gateway/http/header_deadline.py). Providers send theirs in one packet; a slow-drip client
    # otherwise held a connection until the keep-alive timer (75 s and more).
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    # Bodies read and waiting for the store to write them, at most: past it, webhooks get 503
    # (the provider retries) rather than piling up in memory while the store is slow or stuck.
    max_bytes_awaiting_store: int = Field(default=256 * 1024 * 1024, gt=0)
    # On SIGTERM, how long sends and deliveries under way may take to end. Cut short, one the
    # provider or backend had accepted goes again after the restart (a duplicate message).
    shutdown_grace_seconds: float = Field(default=5.0, ge=0)
    # Above this arrival rate acknowledging comes first and the normaliser is paced by the CPU
    # the acknowledgements leave (README, "Under load"); below it, it runs at full speed.
    busy_webhooks_per_second: float = Field(default=1000.0, gt=0)
    # While busy, the normaliser works in paced slices (4 rows every 50 ms on a saturated core,
    # so events keep reaching backends); false pauses it until the burst ends.
    normalise_during_bursts: bool = True


class IngressConfig(_Section):
    # A webhook the provider dated (LINE, Viber, Meta) longer ago than this is refused as a
    # replay, and no dedupe key is pruned younger than this, whatever storage.retention says
    # (Twilio dates nothing: its MessageSid kept this long is the only protection). It must
    # outlast every provider's redeliveries: Meta retries for up to 7 days (providers.md
    # §1.2), so 8 days leaves a day for clock skew and a first attempt late. null: no limit.
    acceptance_window_seconds: float | None = Field(default=8 * 86400.0, gt=0)


class RetentionConfig(_Section):
    """How long the store keeps what traffic leaves behind (gateway/store/pruning.py);
    null keeps it for ever."""

    # Normalised webhooks, their events, finished deliveries. A webhook's dedupe key goes with
    # it: keep them longer than the longest provider redelivery window (Meta: up to 7 days).
    days: float | None = Field(default=14.0, gt=0)
    # Outbound messages with their history: GET /v1/messages/{id} answers 404 after this.
    message_days: float | None = Field(default=30.0, gt=0)
    interval_seconds: float = Field(default=300.0, gt=0)
    # Rows deleted per transaction: small, so writes that arrive meanwhile never wait long.
    batch_size: int = Field(default=200, ge=1, le=5000)


class StorageConfig(_Section):
    backend: Literal["sqlite", "postgres"] = "sqlite"
    path: str = "gateway.db"
    dsn: SecretStr | None = None
    # FULL fsyncs every group commit: an acknowledged webhook survives power loss, not only a crash.
    synchronous: Literal["full", "normal"] = "full"
    # PostgreSQL: connections, each with a writer thread, running group commits side by side
    # (gateway/store/postgres.py). SQLite has one writer, on the event loop.
    connections: int = Field(default=4, ge=1, le=64)
    retention: RetentionConfig = RetentionConfig()

    @model_validator(mode="after")
    def _postgres_needs_dsn(self) -> StorageConfig:
        if self.backend == "postgres" and self.dsn is None:
            raise ValueError("dsn is required when backend is postgres")
        return self


# What an API key may do besides sending and reading its own messages. `read_all`: read every
# client's messages (an operator's console, support tooling); without it a key sees only the
# messages it created, and any other message id is answered 404 as if it did not exist.
ApiScope = Literal["read_all"]


class ApiKey(_Section):
    """One client of the API. Its `name` owns the messages it creates: renaming a key hands
    them to nobody (only a `read_all` key still sees them)."""

    name: str = Field(min_length=1)
    key: SecretStr
    scopes: list[ApiScope] = []

    @model_validator(mode="after")
    def _long_enough(self) -> ApiKey:
        if len(self.key.get_secret_value()) < 16:
            raise ValueError("key must be at least 16 characters")
        return self


_ALL_EVENT_TYPES = EVENT_TYPES + USER_EVENT_TYPES + CONVERSATION_EVENT_TYPES + BROADCAST_EVENT_TYPES


class BackendConfig(_Section):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    url: str = Field(pattern=r"^https?://")
    secret: SecretStr
    # Events about users and conversations (USER_EVENT_TYPES, CONVERSATION_EVENT_TYPES) are
    # not in the default: a backend that names no `events` keeps receiving what it did before
    # they existed, and asks for them by name. Messages in conversations are `message` events.
    # So is `broadcast.completed` (BROADCAST_EVENT_TYPES).
    events: list[Literal[_ALL_EVENT_TYPES]] = list(  # type: ignore[valid-type]
        EVENT_TYPES
    )
    batch_size: int = Field(default=50, ge=1, le=1000)
    # For the whole answer, not each read: one trickling in must not hold the lane for ever.
    timeout_seconds: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _standard_webhooks_key(self) -> BackendConfig:
        standard_key(self.secret.get_secret_value())  # a whsec_ secret must hold base64
        return self


class DeliveryConfig(_Section):
    """Retry policy shared by provider sends and backend webhooks (one outbox)."""

    base_backoff_seconds: float = Field(default=1.0, gt=0)
    max_backoff_seconds: float = Field(default=300.0, gt=0)
    dead_letter_after_seconds: float = Field(default=3 * 86400, gt=0)
    # Sends in flight per channel: each channel (and each backend) works in a lane of its own.
    send_concurrency: int = Field(default=16, ge=1)
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    # A provider status matching no send of ours waits this long for the send to be recorded
    # (gateway/store/held.py), then goes to the backends without a message id. Longer than a
    # send's lease (pipeline/dispatcher.py, 120 s): a send taking longer is taken for lost and
    # sent again under new provider ids, so its first ids are never recorded.
    status_hold_seconds: float = Field(default=300.0, gt=0)


class AnnouncementsConfig(_Section):
    # What the others in a group conversation are told when a visible participant joins or
    # leaves (docs/conversations.md): `{name}` is their display name, `{role}` their role.
    # Empty: nothing is said.
    joined: str = Field(default=JOINED_TEMPLATE, max_length=500)
    left: str = Field(default=LEFT_TEMPLATE, max_length=500)


class ConversationsConfig(_Section):
    # How long a numbered-text answer ("2") still maps to the choices it answers.
    choice_ttl_seconds: float = Field(default=86400.0, gt=0)
    # How long a form conversation waits for the next answer before it is abandoned.
    form_ttl_seconds: float = Field(default=3600.0, gt=0)
    # The backend in control of a new group conversation: it gets its `message` and
    # `postback` events, the other subscribed backends standby copies. Unset: no backend is
    # in control, and every subscribed backend gets them (docs/conversations.md, "Control").
    default_controller: str | None = None
    announcements: AnnouncementsConfig = AnnouncementsConfig()
    # A person present in several open conversations: their message goes to the one that
    # last sent them a copy within this time; past it, they are asked which (docs/conversations.md).
    route_by_recency_seconds: float = Field(default=1800.0, ge=0)
    # How long a message held for "Which chat is this for?" waits for the answer before it
    # goes to the most recently active of the conversations offered.
    route_question_seconds: float = Field(default=600.0, gt=0)
    # The API key (its name) that owns the conversations of provider groups (LINE groups and
    # rooms, WhatsApp groups); unset: the first API key.
    provider_groups_owner: str | None = Field(default=None, min_length=1)


class IdentitiesConfig(_Section):
    # Link an unlinked WhatsApp or SMS sender to the user whose WhatsApp or SMS identity has
    # the same phone number, as the provider sent it (docs/users.md). Off: one number may be
    # shared (a family phone, a shop's line), and linking merges what backends see.
    link_by_phone: bool = False


class CommunityConfig(CommunitySettings):
    """A community the config file makes (docs/communities.md): its settings, an id, and the
    API key (its name) that owns it, sees it and moderates it (default: the first API key)."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    owner: str | None = Field(default=None, min_length=1)


class SendRoutingConfig(_Section):
    """Sending to a user (`to: {"user": ...}`): the order their identities are tried in, and
    failover (docs/sending-to-users.md)."""

    # Country (ISO 3166-1 alpha-2) or `default` → channel types or instance ids, in order.
    channel_order: dict[str, list[str]] = {"default": ["whatsapp", "sms"]}
    # Fail over when a send to a user fails, unless the message says (`options.failover`).
    failover: bool = False
    # Fail over too when no `delivered` status came this long after the message was accepted
    # (unset: only failures fail over). Channels that never report delivery (LINE, WeChat)
    # are not timed.
    delivery_timeout_seconds: float | None = Field(default=None, gt=0)


class ConsoleAccount(_Section):
    """One person who logs in to the console (docs/console.md)."""

    name: str = Field(min_length=1, max_length=64)
    role: Literal["operator", "agent"]
    # An argon2 hash (`gateway console-hash-password`), never the password itself.
    password_hash: SecretStr

    @model_validator(mode="after")
    def _argon2(self) -> ConsoleAccount:
        if not self.password_hash.get_secret_value().startswith("$argon2"):
            raise ValueError(
                "password_hash must be an argon2 hash: make one with"
                " `gateway console-hash-password`"
            )
        return self


class ConsoleConfig(_Section):
    """The web console at /console (docs/console.md): off unless enabled."""

    enabled: bool = False
    accounts: list[ConsoleAccount] = []
    # Mark the session cookie Secure even for plain-HTTP requests: set it behind a proxy that
    # ends TLS (a request that came over HTTPS itself is always answered with Secure).
    secure_cookies: bool = False
    session_minutes: float = Field(default=480.0, gt=0)

    @model_validator(mode="after")
    def _accounts_when_enabled(self) -> ConsoleConfig:
        if self.enabled and not self.accounts:
            raise ValueError("accounts: an enabled console needs at least one account")
        names = [a.name for a in self.accounts]
        if len(set(names)) != len(names):
            raise ValueError("accounts: each account needs a name of its own")
        return self


class LoggingConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


class GatewayConfig(_Section):
    public_url: str = Field(pattern=r"^https?://")
    server: ServerConfig = ServerConfig()
    ingress: IngressConfig = IngressConfig()
    storage: StorageConfig = StorageConfig()
    api_keys: list[ApiKey] = []
    backends: list[BackendConfig] = []
    channels: list[AnyChannelConfig] = []
    delivery: DeliveryConfig = DeliveryConfig()
    conversations: ConversationsConfig = ConversationsConfig()
    identities: IdentitiesConfig = IdentitiesConfig()
    communities: list[CommunityConfig] = []
    routing: SendRoutingConfig = SendRoutingConfig()
    console: ConsoleConfig = ConsoleConfig()
    logging: LoggingConfig = LoggingConfig()

    def community_owner(self, community: CommunityConfig) -> str:
        return community.owner or (self.api_keys[0].name if self.api_keys else "")

    def inbound_routing(self) -> RoutingPolicy:
        """The router's settings for inbound routing (gateway/router/conversations.py)."""
        settings = self.conversations
        owner = settings.provider_groups_owner or (self.api_keys[0].name if self.api_keys else "")
        return RoutingPolicy(
            recency_seconds=settings.route_by_recency_seconds,
            question_seconds=settings.route_question_seconds,
            provider_groups_owner=owner,
        )

    def secrets(self) -> list[str]:
        values = [k.key.get_secret_value() for k in self.api_keys]
        values += [b.secret.get_secret_value() for b in self.backends]
        values += [c.moderation.secret.get_secret_value() for c in self.communities if c.moderation]
        values += [a.password_hash.get_secret_value() for a in self.console.accounts]
        if self.storage.dsn is not None:
            dsn = self.storage.dsn.get_secret_value()
            values.append(dsn)
            values += _dsn_passwords(dsn)  # a driver's error may quote the password alone
        return values


def _dsn_passwords(dsn: str) -> list[str]:
    """The password in a URL (postgresql://user:pw@host/db) or key=value DSN."""
    found = re.findall(r"(?:^|\s)password\s*=\s*'?([^'\s]+)", dsn)
    if "://" in dsn:
        with contextlib.suppress(ValueError):
            password = urllib.parse.urlsplit(dsn).password
            found += [password, urllib.parse.unquote(password)] if password else []
    return found


class ConfigError(Exception):
    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def env_variables_of(text: str) -> list[str]:
    """The environment variables a config value reads (`${NAME}`, `${NAME:-default}`)."""
    return [match.group(1) for match in _ENV_REF.finditer(text)]


def _location(path: tuple[int | str, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"


# Far more values than any real config holds. YAML aliases can make a small file expand
# exponentially ("billion laughs"): walking that would hang check-config and serve.
MAX_CONFIG_VALUES = 100_000


class _TooManyValues(Exception):
    pass


def _substitute_env(
    node: Any,
    path: tuple[int | str, ...],
    env: dict[str, str],
    problems: dict[str, str],
    counted: Iterator[int],
) -> Any:
    if next(counted) > MAX_CONFIG_VALUES:
        raise _TooManyValues
    if isinstance(node, dict):
        return {
            k: _substitute_env(v, (*path, str(k)), env, problems, counted) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_substitute_env(v, (*path, i), env, problems, counted) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            hint = did_you_mean(name, list(env)) or f"; set it, or give a default: ${{{name}:-...}}"
            problems[_location(path)] = f"environment variable {name} is not set{hint}"
            return ""

        return _ENV_REF.sub(replace, node)
    return node


_ROUTED_BY = {name: adapter.config_model.routed_by for name, adapter in ADAPTERS.items()}


def _unknown_owner(data: dict[str, Any]) -> dict[str, str]:
    """conversations.provider_groups_owner names no API key: nobody could use the provider
    groups' conversations."""
    section = data.get("conversations")
    owner = section.get("provider_groups_owner") if isinstance(section, dict) else None
    keys = data.get("api_keys")
    keys = keys if isinstance(keys, list) else []
    names = [k["name"] for k in keys if isinstance(k, dict) and isinstance(k.get("name"), str)]
    if not isinstance(owner, str) or not owner or owner in names:
        return {}
    known = ", ".join(repr(n) for n in names) or "none configured"
    return {
        "conversations.provider_groups_owner": f"{owner!r} is not the name of an API key"
        f" ({known}){did_you_mean(owner, names)}"
    }


def _repeated(data: dict[str, Any]) -> dict[str, str]:
    """What two entries of a list may not share, each named by where it is given again:
    ids and names (webhook paths, delivery targets, log names), API keys (a request would be
    put down to the wrong client), and the id a shared Graph callback routes by (one number's
    events would all go to one of the two)."""
    problems: dict[str, str] = {}

    def check(section: str, field: str, value: Any, index: int, seen: dict[Any, int]) -> None:
        if not isinstance(value, str) or not value:
            return
        if value not in seen:
            seen[value] = index
            return
        first = f"{section}[{seen[value]}]"
        problems[f"{section}[{index}].{field}"] = (
            f"the same key as {first}'s: give each client its own"
            if field == "key"
            else f"{value!r} is also {first}'s {field}"
        )

    for section, fields in (
        ("channels", ["id"]),
        ("backends", ["id"]),
        ("api_keys", ["name", "key"]),
    ):
        entries = data.get(section)
        if not isinstance(entries, list):
            continue
        for field in fields:
            seen: dict[Any, int] = {}
            for index, entry in enumerate(entries):
                if isinstance(entry, dict):
                    check(section, field, entry.get(field), index, seen)
    routed: dict[Any, int] = {}
    for index, entry in enumerate(data.get("channels") or []):
        routed_by = _ROUTED_BY.get(str(entry.get("type"))) if isinstance(entry, dict) else None
        if routed_by:
            check("channels", routed_by, entry.get(routed_by), index, routed)
    return problems


def _community_keywords(data: dict[str, Any]) -> dict[str, str]:
    """Two communities may not share a join or leave keyword (whose would it be?), and a
    community's owner must be an API key's name."""
    problems: dict[str, str] = {}
    entries = data.get("communities")
    keys = data.get("api_keys")
    names = [k.get("name") for k in keys if isinstance(k, dict)] if isinstance(keys, list) else []
    seen: dict[str, str] = {}
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(entry, dict):
            continue
        owner = entry.get("owner")
        if isinstance(owner, str) and owner not in names:
            problems[f"communities[{index}].owner"] = f"{owner!r} is not the name of an API key"
        keywords = entry.get("keywords")
        for language, actions in (keywords if isinstance(keywords, dict) else {}).items():
            for action in ("join", "leave"):
                texts = actions.get(action) if isinstance(actions, dict) else None
                for n, text in enumerate(texts if isinstance(texts, list) else []):
                    if not isinstance(text, str):
                        continue
                    where = f"communities[{index}].keywords.{language}.{action}[{n}]"
                    first = seen.setdefault(phrase(text), where)
                    if first != where and not first.startswith(f"communities[{index}]."):
                        problems[where] = f"{phrase(text)!r} is also {first}"
    return problems


def _bad_channel_order(data: dict[str, Any]) -> dict[str, str]:
    """routing.channel_order: each key a country (ISO 3166-1 alpha-2) or `default`, each
    entry a channel type or a configured channel instance id."""
    section = data.get("routing")
    order = section.get("channel_order") if isinstance(section, dict) else None
    if not isinstance(order, dict):
        return {}
    channels = data.get("channels")
    ids = (
        [c.get("id") for c in channels if isinstance(c, dict)] if isinstance(channels, list) else []
    )
    known = [*ADAPTERS, *(i for i in ids if isinstance(i, str))]
    problems: dict[str, str] = {}
    for country, entries in order.items():
        where = f"routing.channel_order.{country}"
        if country != "default" and country not in ISO_COUNTRIES:
            problems[where] = (
                f"{country!r} is not an ISO 3166-1 alpha-2 country code (such as JP, UA, US)"
                " or `default`"
            )
            continue
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(entry, str) and entry not in known:
                problems[f"{where}[{index}]"] = (
                    f"{entry!r} is neither a channel type nor a channel id"
                    f"{did_you_mean(entry, known)}"
                )
    return problems


def _unknown_controller(data: dict[str, Any]) -> dict[str, str]:
    """conversations.default_controller must name a configured backend: control would
    otherwise go to one that receives nothing."""
    section = data.get("conversations")
    wanted = section.get("default_controller") if isinstance(section, dict) else None
    if not isinstance(wanted, str):
        return {}
    backends = data.get("backends")
    ids = (
        [b.get("id") for b in backends if isinstance(b, dict)] if isinstance(backends, list) else []
    )
    if wanted in ids:
        return {}
    known = ", ".join(repr(i) for i in ids if isinstance(i, str)) or "none configured"
    return {"conversations.default_controller": f"no backend {wanted!r} (backends: {known})"}


_TAGGED = {name: adapter.config_model for name, adapter in ADAPTERS.items()}


def parse_config(
    data: Any,
    source: str,
    env: dict[str, str] | None = None,
    *,
    tree: yaml.Node | None = None,
) -> GatewayConfig:
    """Validate `data`; with `tree` (the file's `yaml.compose` nodes) each problem also gets
    the line and column it is at."""
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): expected a mapping of settings"])
    env_problems: dict[str, str] = {}
    environment = dict(os.environ if env is None else env)
    try:
        resolved = _substitute_env(data, (), environment, env_problems, itertools.count())
    except _TooManyValues:
        problem = f"(top level): more than {MAX_CONFIG_VALUES:,} values (aliases expanding?)"
        raise ConfigError(source, [problem]) from None
    problems = {
        **env_problems,
        **_repeated(resolved),
        **_unknown_controller(resolved),
        **_unknown_owner(resolved),
        **_community_keywords(resolved),
        **_bad_channel_order(resolved),
    }
    # Where to point in the file, when not at the value itself: an unknown key's key, a bad
    # channel type's `type`.
    marks: dict[str, tuple[str, bool]] = {}
    config: GatewayConfig | None = None
    try:
        config = GatewayConfig.model_validate(resolved)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            where = field_path(loc, resolved)
            parent = model_at(GatewayConfig, loc[:-1], _TAGGED)
            problems.setdefault(where, plain(error, parent))
            if error["type"] == "extra_forbidden":
                marks[where] = (where, True)
            elif error["type"] == "union_tag_invalid":
                marks[where] = (f"{where}.type", False)
    if problems or config is None:
        found = [located(tree, k, v, *marks.get(k, (k, False))) for k, v in problems.items()]
        # In the file's order (sorted is stable: without a file, in the order found).
        raise ConfigError(source, [text for _, text in sorted(found, key=lambda f: f[0])])
    return config


class _ConfigLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error: PyYAML
    keeps the last silently, so a second `channels:` block would drop every channel of the
    first without a word. Keys that `<<` merges in may still be overridden, as YAML intends."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first_seen: dict[Any, int] = {}
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if isinstance(key, Hashable) and key in first_seen:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"{key!r} is given twice in one mapping (first on line {first_seen[key]})",
                        key_node.start_mark,
                    )
                if isinstance(key, Hashable):
                    first_seen[key] = line
        return super().construct_mapping(node, deep=deep)  # type: ignore[arg-type]


def load_config(path: str | Path, env: dict[str, str] | None = None) -> GatewayConfig:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"cannot read file: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            source, [f"not UTF-8 text: byte 0x{exc.object[exc.start]:02x} at offset {exc.start}"]
        ) from None
    try:
        data = yaml.load(text, Loader=_ConfigLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(
            source, [f"{where}invalid YAML ({getattr(exc, 'problem', exc)})"]
        ) from None
    # The same text as nodes, whose marks say where each problem is (aliases are not expanded).
    return parse_config(data, source, env, tree=yaml.compose(text, Loader=yaml.SafeLoader))
