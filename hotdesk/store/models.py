"""peewee models: the whole hot-desking state lives in these tables.

All timestamps are naive UTC. Constraints that matter for correctness (one MAC per
device, one idle extension per tenant, at most one active session per device) are
enforced by unique indexes in the database, not only in Python.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from peewee import (
    SQL,
    AutoField,
    BooleanField,
    CharField,
    DatabaseProxy,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

# The one database this process's models read and write. The models are module-level
# classes, so a process has exactly one: hotdesk.store.db.open_database() binds it (the
# runtime does, once, at start-up); code that needs the handle itself (transactions,
# "is this PostgreSQL?") asks hotdesk.store.db.current_database(). Two runtimes in one
# process would share it.
process_database = DatabaseProxy()


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_token() -> str:
    return secrets.token_urlsafe(24)


class BaseModel(Model):
    class Meta:
        database = process_database
        legacy_table_names = False


class SchemaVersion(BaseModel):
    version = IntegerField()
    applied_at = DateTimeField(default=utcnow)


class Tenant(BaseModel):
    id = AutoField()
    name = CharField()
    sip_domain = CharField(unique=True)
    # host[:port] the phones register to; empty = [provisioning] registrar
    registrar = CharField(default="")
    is_default = BooleanField(default=False)
    # Empty = the [policy] defaults from the config file.
    multiple_login = CharField(default="")
    max_login_minutes = IntegerField(null=True)
    daily_logout_time = CharField(default="")
    # Which PIN callers key: switch | hotdesk; empty = [policy] pin_source.
    pin_source = CharField(default="")

    timezone = CharField(default="")  # IANA name for its phones' clocks; "" = [provisioning]
    created_at = DateTimeField(default=utcnow)


class User(BaseModel):
    id = AutoField()
    tenant = ForeignKeyField(Tenant, backref="users", on_delete="CASCADE")
    extension = CharField()
    display_name = CharField(default="")
    sip_username = CharField()
    sip_password = CharField(default="")
    voicemail_box = CharField(default="")
    voicemail_context = CharField(default="default")
    pin_hash = CharField(default="")
    hotdesk_enabled = BooleanField(default=False)
    language = CharField(default="en")
    max_login_minutes = IntegerField(null=True)
    # JSON list of {"type": "blf"|"speeddial"|"line", "value": "...", "label": "..."}
    keys_json = TextField(default="[]")
    timezone = CharField(default="")  # IANA name while logged in; "" = the tenant's
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("tenant", "extension"), True), (("tenant", "sip_username"), True))


class Device(BaseModel):
    id = AutoField()
    tenant = ForeignKeyField(Tenant, backref="devices", on_delete="CASCADE")
    mac = CharField(max_length=12, unique=True)  # 12 lower-case hex digits
    vendor = CharField(default="yealink")
    model = CharField(default="")
    method = CharField(default="pnp")  # pnp | rps
    network = CharField(default="lan")  # lan | sbc
    sbc_address = CharField(default="")
    sip_transport = CharField(default="")  # udp | tcp | tls; "" = [provisioning] transport
    # "<zone>|<UTC offset minutes>" the phone's config last carried (DST-change job).
    clock_state = CharField(default="")
    display_name = CharField(default="")
    idle_extension = CharField()
    idle_sip_username = CharField()
    idle_sip_password = CharField(default="")
    rps_enabled = BooleanField(default=False)
    # Secret path segment of the provisioning URL; also the HTTP basic password.
    prov_token = CharField(default=new_token, unique=True)
    # Bumped on every change of the config the phone should have.
    config_version = IntegerField(default=1)
    fetched_version = IntegerField(default=0)
    last_fetch_at = DateTimeField(null=True)
    # ip:port the phone last used (SIP source address, from a call or a fetch).
    last_address = CharField(default="")
    last_user_agent = CharField(default="")
    created_at = DateTimeField(default=utcnow)
    # The idle account was created on the switch by hotdesk (generated password).
    idle_managed = BooleanField(default=False)
    # hotdesk.switch.accounts.fingerprint of the account the current config carries;
    # "" = not known. The worker re-provisions when the switch's account differs.
    account_fingerprint = CharField(default="")
    # PnP answers with the URL only before the first fetch or until this time (armed by
    # an admin); see hotdesk.provisioning.discovery.pnp_may_answer.
    pnp_armed_until = DateTimeField(null=True)

    class Meta:
        indexes = ((("tenant", "idle_extension"), True), (("tenant", "idle_sip_username"), True))


class Session(BaseModel):
    id = AutoField()
    tenant = ForeignKeyField(Tenant, on_delete="CASCADE")
    device = ForeignKeyField(Device, backref="sessions", on_delete="CASCADE")
    user = ForeignKeyField(User, backref="sessions", on_delete="CASCADE")
    started_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField(null=True)
    ended_at = DateTimeField(null=True)
    # logout | roamed | auto_logout | expired | admin | device_deleted | user_deleted
    end_reason = CharField(default="")
    call_id = CharField(default="")


# At most one active session per device, enforced by the database.
Session.add_index(
    Session.index(Session.device, unique=True, where=SQL("ended_at IS NULL"),
                  name="session_one_active_per_device")
)
# The admin lists' sorts and filters (hotdesk.admin.lists; created on upgrade by
# hotdesk.store.db._v11_list_indexes, which names the same indexes).
Session.add_index(
    Session.index(Session.tenant, Session.started_at, where=SQL("ended_at IS NULL"),
                  name="session_active_tenant_started")
)


class LoginAttempt(BaseModel):
    id = AutoField()
    tenant = ForeignKeyField(Tenant, on_delete="CASCADE")
    user = ForeignKeyField(User, null=True, on_delete="CASCADE")
    device = ForeignKeyField(Device, null=True, on_delete="SET NULL")
    extension = CharField(default="")
    success = BooleanField(default=False)
    result = CharField(default="")
    source = CharField(default="")
    call_id = CharField(default="")
    at = DateTimeField(default=utcnow, index=True)


class AuditEvent(BaseModel):
    id = AutoField()
    tenant = ForeignKeyField(Tenant, null=True, on_delete="CASCADE")
    at = DateTimeField(default=utcnow, index=True)
    # who: "caller:101", "admin:alice", "system", "phone:<mac>"
    actor = CharField(default="system")
    action = CharField(index=True)
    device = ForeignKeyField(Device, null=True, on_delete="SET NULL")
    user = ForeignKeyField(User, null=True, on_delete="SET NULL")
    call_id = CharField(default="")
    detail = TextField(default="")


class OutboxNotify(BaseModel):
    """A check-sync NOTIFY to send; durable so a switch outage loses nothing."""

    id = AutoField()
    tenant = ForeignKeyField(Tenant, null=True, on_delete="CASCADE")
    device = ForeignKeyField(Device, null=True, on_delete="SET NULL")
    switch = CharField(default="asterisk")
    # SIP user the phone is registered as when the NOTIFY goes out.
    endpoint = CharField()
    domain = CharField(default="")
    # sip:user@ip:port of exactly this phone, when known; preferred over endpoint.
    contact_uri = CharField(default="")
    event = CharField(default="check-sync")
    config_version = IntegerField(default=0)
    status = CharField(default="pending", index=True)  # pending | sent | failed
    attempts = IntegerField(default=0)
    next_attempt_at = DateTimeField(default=utcnow, index=True)
    claimed_by = CharField(default="")
    claimed_until = DateTimeField(null=True)
    last_error = TextField(default="")
    created_at = DateTimeField(default=utcnow)
    sent_at = DateTimeField(null=True)
    # Set on the newest row of a config version once reconciliation gave up on it (the
    # phone is left "pending" for an admin); at most once per device and version.
    gave_up = BooleanField(default=False)
    # Released by a paced push (hotdesk.notify.pacing): drained after every other due row,
    # so a login's NOTIFY never queues behind a push. NULL = an ordinary NOTIFY.
    paced = BooleanField(null=True)


class ConfigFetch(BaseModel):
    id = AutoField()
    device = ForeignKeyField(Device, backref="fetches", on_delete="CASCADE")
    config_version = IntegerField()
    filename = CharField(default="")
    at = DateTimeField(default=utcnow, index=True)
    address = CharField(default="")
    user_agent = CharField(default="")


class DiscoveredPhone(BaseModel):
    id = AutoField()
    mac = CharField(max_length=12, unique=True)
    vendor = CharField(default="")
    model = CharField(default="")
    firmware = CharField(default="")
    address = CharField(default="")
    first_seen = DateTimeField(default=utcnow)
    last_seen = DateTimeField(default=utcnow)
    adopted = BooleanField(default=False)


class Admin(BaseModel):
    id = AutoField()
    username = CharField(unique=True)
    password_hash = CharField()
    role = CharField(default="system")  # system | tenant
    tenant = ForeignKeyField(Tenant, null=True, on_delete="CASCADE")
    created_at = DateTimeField(default=utcnow)
    # A disabled admin can neither sign in nor use a token.
    disabled = BooleanField(default=False)


class ApiToken(BaseModel):
    id = AutoField()
    admin = ForeignKeyField(Admin, backref="tokens", on_delete="CASCADE")
    token_hash = CharField(unique=True)
    label = CharField(default="")  # the token's name
    created_at = DateTimeField(default=utcnow)
    last_used_at = DateTimeField(null=True)
    expires_at = DateTimeField(null=True)  # None = never


class AdminWebSession(BaseModel):
    """A signed-in browser. The cookie holds a random id; only its SHA-256 is stored."""

    id = AutoField()
    admin = ForeignKeyField(Admin, backref="web_sessions", on_delete="CASCADE")
    key_hash = CharField(unique=True)
    created_at = DateTimeField(default=utcnow)
    last_seen_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField(index=True)
    address = CharField(default="")


class SigninAttempt(BaseModel):
    """A password test charged to a username or a client address: a failure, or one in
    flight (taken before the password is checked, so concurrent tries count too)."""

    id = AutoField()
    key = CharField(index=True)  # "u:<username>" | "a:<address>"
    at = DateTimeField(default=utcnow, index=True)


class Heartbeat(BaseModel):
    """Last reported state of a process or switch connection, one row per component+node,
    so `hotdesk status`, /metrics and the web admin see every process's view."""

    id = AutoField()
    component = CharField()  # ami, esl, agi, web, worker, pnp, ...
    node = CharField()
    state = CharField(default="up")  # up | down
    since = DateTimeField(default=utcnow)  # when the state last changed
    updated_at = DateTimeField(default=utcnow)
    detail = TextField(default="")

    class Meta:
        indexes = ((("component", "node"), True),)


class SwitchSync(BaseModel):
    """Idle accounts to write to the switch: ``wanted`` moves on every phone added or
    removed, ``applied`` when the accounts file was written and the switch reloaded.
    Durable, so a process without a switch connection can leave the work to one with."""

    id = AutoField()
    name = CharField(unique=True)  # "idle-accounts"
    wanted = IntegerField(default=0)
    applied = IntegerField(default=0)
    last_error = TextField(default="")
    updated_at = DateTimeField(default=utcnow)

class Registration(BaseModel):
    """One contact registered on the switch, as its events say (hotdesk.switch.registrations)."""

    id = AutoField()
    switch = CharField(default="asterisk")
    account = CharField()  # the SIP account (AOR / directory user) the phone registered as
    contact_uri = CharField()
    address = CharField(default="")  # ip:port of the contact
    domain = CharField(default="")
    user_agent = CharField(default="")
    device = ForeignKeyField(Device, null=True, on_delete="SET NULL")
    registered_at = DateTimeField(default=utcnow)  # first seen: "since"
    refreshed_at = DateTimeField(default=utcnow)  # newest event or listing that showed it
    expires_at = DateTimeField(null=True)

    class Meta:
        indexes = ((("switch", "account", "contact_uri"), True),)


class RegistrationFailure(BaseModel):
    """The newest refused registration from one address (wrong password, unknown account)."""

    id = AutoField()
    switch = CharField(default="asterisk")
    address = CharField()  # ip:port the REGISTER came from
    account = CharField(default="")
    reason = CharField(default="")
    device = ForeignKeyField(Device, null=True, on_delete="SET NULL")
    at = DateTimeField(default=utcnow)
    count = IntegerField(default=1)

    class Meta:
        indexes = ((("switch", "address"), True),)


class ImportJob(BaseModel):
    """A user import, durable so a restart of the web process resumes it (or reports
    exactly what it did); its rows are :class:`ImportRow`."""

    id = CharField(primary_key=True)  # random, in the job's URL
    tenant = ForeignKeyField(Tenant, on_delete="CASCADE")
    admin_id = IntegerField(null=True)
    actor = CharField(default="system")
    enable_hotdesk = BooleanField(default=False)
    state = CharField(default="running")  # running | finished | error
    total = IntegerField(default=0)
    done = IntegerField(default=0)
    problems_json = TextField(default="[]")  # [[line, message], …] found while parsing
    error = TextField(default="")
    # The process applying it and until when; an expired lease is taken over.
    owner = CharField(default="")
    lease_until = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)
    finished_at = DateTimeField(null=True)


class ImportRow(BaseModel):
    id = AutoField()
    job = ForeignKeyField(ImportJob, backref="rows", on_delete="CASCADE")
    seq = IntegerField()
    extension = CharField()
    line = IntegerField(default=0)
    # The record as JSON; its PIN and SIP password are blanked once the row is applied.
    payload = TextField(default="{}")
    outcome = CharField(default="")  # "" = to do | created | updated | skipped
    message = TextField(default="")

    class Meta:
        indexes = ((("job", "seq"), True),)


Device.add_index(Device.index(Device.tenant, Device.display_name, name="device_tenant_name"))
User.add_index(User.index(User.tenant, User.display_name, name="user_tenant_name"))
# (at, id): the audit log's order, so a deep page is an index-only walk on PostgreSQL.
AuditEvent.add_index(AuditEvent.index(AuditEvent.tenant, AuditEvent.at, AuditEvent.id,
                                      name="audit_event_tenant_at_id"))
AuditEvent.add_index(AuditEvent.index(AuditEvent.at, AuditEvent.id, name="audit_event_at_id"))
LoginAttempt.add_index(LoginAttempt.index(LoginAttempt.device, LoginAttempt.at,
                                          name="login_attempt_device_at"))


ALL_MODELS: list[type[BaseModel]] = [
    SchemaVersion, Tenant, User, Device, Session, LoginAttempt, AuditEvent,
    OutboxNotify, ConfigFetch, DiscoveredPhone, Admin, ApiToken, Heartbeat, SwitchSync,
    Registration, RegistrationFailure, ImportJob, ImportRow,
    AdminWebSession, SigninAttempt,
]
