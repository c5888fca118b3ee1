"""paho's v5 Properties with shared lookup tables (twinbill_ingest.mqtt.share_property_tables)
still validate, pack and unpack as before, and each instance keeps its own values."""

from __future__ import annotations

import pytest
from paho.mqtt.exception import MQTTException
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from twinbill_ingest.mqtt import share_property_tables


def test_properties_keep_their_own_values_and_round_trip() -> None:
    """Two instances share the tables, not the values; pack/unpack gives the same properties."""
    share_property_tables()
    share_property_tables()  # idempotent
    first = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho is untyped here
    # paho's properties are attributes it sets by name, unknown to mypy
    setattr(first, "UserProperty", ("device", "d1"))  # noqa: B010
    setattr(first, "MessageExpiryInterval", 30)  # noqa: B010
    second = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho is untyped here
    assert second.isEmpty()  # type: ignore[no-untyped-call]  # paho is untyped here
    assert first.names is second.names
    unpacked = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho is untyped here
    unpacked.unpack(first.pack())  # type: ignore[no-untyped-call]  # paho is untyped here
    assert getattr(unpacked, "UserProperty") == [("device", "d1")]  # noqa: B009
    assert getattr(unpacked, "MessageExpiryInterval") == 30  # noqa: B009


def test_properties_still_refuse_what_their_packet_type_does_not_allow() -> None:
    """The shared tables still decide which property a packet type may carry."""
    share_property_tables()
    puback = Properties(PacketTypes.PUBACK)  # type: ignore[no-untyped-call]  # paho is untyped here
    with pytest.raises(MQTTException):
        setattr(puback, "MessageExpiryInterval", 30)  # noqa: B010
    connect = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho is untyped here
    setattr(connect, "SessionExpiryInterval", 120)  # noqa: B010
    assert getattr(connect, "SessionExpiryInterval") == 120  # noqa: B009
