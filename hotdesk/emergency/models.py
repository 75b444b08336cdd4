"""Tables of the emergency feature: desk/tenant locations and the switch-store outbox."""

from __future__ import annotations

from peewee import (
    AutoField,
    BooleanField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from hotdesk.store.models import BaseModel, Device, Tenant, utcnow


class EmergencyLocation(BaseModel):
    """A dispatchable location (civic address) and callback number (ELIN).

    ``device`` set: that desk's location; ``device`` NULL: the tenant's default, used for
    desks without one and by the switch when it holds nothing for a caller.
    """

    id = AutoField()
    tenant = ForeignKeyField(Tenant, on_delete="CASCADE")
    device = ForeignKeyField(Device, null=True, unique=True, on_delete="CASCADE")
    country = CharField(default="")
    region = CharField(default="")  # state / province (PIDF-LO A1)
    city = CharField(default="")  # A3
    postal_code = CharField(default="")  # PC
    street = CharField(default="")  # RD
    number = CharField(default="")  # HNO
    building = CharField(default="")  # BLD
    floor = CharField(default="")  # FLR
    room = CharField(default="")  # ROOM
    text = CharField(default="")  # LOC: anything else a responder needs
    callback = CharField(default="")  # ELIN / callback number for this desk
    updated_at = DateTimeField(default=utcnow)


class EmergencySync(BaseModel):
    """One account whose emergency entry in the switch's store must be (re)written.

    Not a queue of operations: the drain computes what the switch must hold *now* from
    the database and writes that, so marks coalesce and order never matters. ``stamp``
    grows with every mark; a write only clears the row if no newer mark came meanwhile.
    ``endpoint`` "" stands for the tenant's default entry.
    """

    id = AutoField()
    tenant = ForeignKeyField(Tenant, on_delete="CASCADE")
    endpoint = CharField()
    pending = BooleanField(default=True, index=True)
    stamp = IntegerField(default=1)
    attempts = IntegerField(default=0)
    next_attempt_at = DateTimeField(default=utcnow)
    claimed_until = DateTimeField(null=True)
    last_error = TextField(default="")
    written_at = DateTimeField(null=True)
    # The switch holds an entry for this account (as far as hotdesk wrote it): without
    # one, "nothing" needs no write, so installs without locations cause no traffic.
    held = BooleanField(default=False)

    class Meta:
        indexes = ((("tenant", "endpoint"), True),)


class EmergencyCallSeen(BaseModel):
    """One row per emergency call any process saw: several ``hotdesk agi``/``esl``
    workers watch the same switch, and only the one whose insert wins notifies."""

    id = AutoField()
    key = CharField(unique=True)  # "<switch>:<call id>"
    at = DateTimeField(default=utcnow, index=True)


EMERGENCY_MODELS = [EmergencyLocation, EmergencySync, EmergencyCallSeen]
