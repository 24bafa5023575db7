"""The device protocol state machine, tested text frame in, events and frames out."""

from __future__ import annotations

import json

import pytest

from tidings.core.models import Delivery, DeviceInfo, LogEntry
from tidings.protocol import codes
from tidings.protocol.session import (
    MAX_ERRORS,
    Acked,
    AppCommand,
    AppRegister,
    AppUnregister,
    Clicked,
    DeviceSession,
    Hello,
    State,
    delivery_frame,
    log_frame,
)


def frames(s: DeviceSession) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(f) for f in s.frames_to_send()]


def ready(uaid: str = "u" * 32) -> DeviceSession:
    s = DeviceSession()
    assert s.receive_text('{"messageType":"hello","use_webpush":true}') == [Hello(None)]
    s.hello_ok(uaid)
    s.frames_to_send()
    return s


def registered(reg_id: str = "R1", app_id: str = "A1") -> DeviceSession:
    s = ready()
    s.register_ok("1", app_id, reg_id)
    s.frames_to_send()
    return s


def test_hello_round_trip_echoes_uaid() -> None:
    s = DeviceSession()
    assert s.receive_text('{"messageType":"hello","uaid":"abc"}') == [Hello("abc")]
    s.hello_ok("abc")
    [reply] = frames(s)
    assert reply == {
        "messageType": "hello",
        "uaid": "abc",
        "status": 200,
        "use_webpush": True,
        "broadcasts": {},
    }
    assert s.state is State.READY


@pytest.mark.parametrize("uaid", [123, "", "x" * 129])
def test_unusable_uaid_is_replaced(uaid: object) -> None:
    s = DeviceSession()
    assert s.receive_text(json.dumps({"messageType": "hello", "uaid": uaid})) == [Hello(None)]


def test_frame_before_hello_closes() -> None:
    s = DeviceSession()
    assert s.receive_text('{"messageType":"app_register","app_id":"a"}') == []
    [err] = frames(s)
    assert err["code"] == codes.HELLO_FIRST
    assert s.state is State.CLOSED and s.close_code == codes.CLOSE_POLICY


def test_ping_is_answered() -> None:
    s = ready()
    assert s.receive_text("{}") == []
    assert s.frames_to_send() == [b"{}"]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", codes.BAD_FRAME),
        ("[1,2]", codes.BAD_FRAME),
        ('{"messageType":"bogus"}', codes.UNKNOWN_TYPE),
        ('{"messageType":7}', codes.UNKNOWN_TYPE),
        ('{"messageType":"hello"}', codes.BAD_FRAME),
        ('{"messageType":"app_register","req":"9"}', codes.BAD_FRAME),
        (
            '{"messageType":"app_register","req":"9","app_id":"a","app_key":"k","package":""}',
            codes.BAD_FRAME,
        ),
        (
            '{"messageType":"app_register","app_id":"a","app_key":"k","package":"p","sdk":[]}',
            codes.BAD_FRAME,
        ),
        (
            '{"messageType":"app_command","req":"2","reg_id":"nope","command":"set-alias",'
            '"args":["a"]}',
            codes.NOT_REGISTERED,
        ),
        ('{"messageType":"ack","updates":[{"reg_id":"nope","seq":1}]}', codes.NOT_REGISTERED),
        ('{"messageType":"ack","updates":"x"}', codes.BAD_FRAME),
        ('{"messageType":"click","reg_id":"nope","id":"m"}', codes.NOT_REGISTERED),
        ('{"messageType":"app_unregister","reg_id":"nope"}', codes.NOT_REGISTERED),
    ],
)
def test_bad_frames_get_error_frames(text: str, code: int) -> None:
    s = ready()
    assert s.receive_text(text) == []
    [err] = frames(s)
    assert err["messageType"] == "error" and err["code"] == code and err["reason"]
    assert s.state is State.READY


@pytest.mark.parametrize(
    "text",
    [
        '{"messageType":"ack","updates":[{"reg_id":"R1","seq":1,"id":"m\\u0000"}]}',
        '{"messageType":"app_command","req":"2","reg_id":"R1","command":"set-alias",'
        '"args":["a\\u0000b"]}',
        '{"messageType":"app_register","req":"3","app_id":"a\\u0000","app_key":"k","package":"p"}',
        '{"messageType":"click","reg_id":"R1","id":"m","x\\u0000":1}',
    ],
)
@pytest.mark.parametrize("as_bytes", [False, True])
def test_strings_with_nul_are_refused(text: str, as_bytes: bool) -> None:
    """No text the store keeps may hold U+0000 (PostgreSQL cannot): the frame is refused."""
    s = registered()
    assert s.receive_text(text.encode() if as_bytes else text) == []
    [err] = frames(s)
    assert err["code"] == codes.BAD_FRAME and "U+0000" in err["reason"]
    # a backslash that is text, not an escape, is fine
    ok = '{"messageType":"ack","updates":[{"reg_id":"R1","seq":1,"id":"m\\\\u0000"}]}'
    assert s.receive_text(ok) == [Acked((("R1", 1, "m\\u0000"),))]


def test_error_frame_carries_request_id() -> None:
    s = ready()
    s.receive_text('{"messageType":"app_register","req":"42","app_id":"a"}')
    assert frames(s)[0]["req"] == "42"


def test_too_many_bad_frames_close() -> None:
    s = ready()
    for _ in range(MAX_ERRORS):
        s.receive_text("garbage")
    assert s.state is State.CLOSED and s.close_code == codes.CLOSE_POLICY
    assert s.receive_text("{}") == []


def test_binary_frames_are_refused() -> None:
    s = ready()
    s.receive_binary()
    assert frames(s)[0]["code"] == codes.BAD_FRAME


def test_app_register_event_and_answers() -> None:
    s = ready()
    [ev] = s.receive_text(
        json.dumps(
            {
                "messageType": "app_register",
                "req": 7,
                "app_id": "A1",
                "app_key": "K",
                "package": "com.x.y",
                "sdk": {"name": "tidings-python", "version": "0.1"},
                "app_version": "3.2",
                "device": {"locale": "en_US", "model": "Pixel"},
                "consent": {"version": "v2", "agreed_at": 1700000000000},
            }
        )
    )
    assert isinstance(ev, AppRegister)
    assert (ev.req, ev.app_id, ev.app_key, ev.package) == ("7", "A1", "K", "com.x.y")
    assert ev.info.consent_version == "v2" and ev.info.consent_at == 1700000000000
    assert ev.info.locale == "en_US" and ev.info.sdk_version == "0.1"
    s.register_failed("7", "A1", codes.BAD_PACKAGE, "package does not match")
    assert frames(s)[0] == {
        "messageType": "app_register",
        "req": "7",
        "status": 403,
        "code": 22022,
        "app_id": "A1",
        "reason": "package does not match",
    }
    s.register_ok("7", "A1", "R1")
    assert frames(s)[0]["reg_id"] == "R1" and s.apps == {"R1": "A1"}


def test_commands_are_checked_before_the_core_sees_them() -> None:
    s = registered()
    ev = s.receive_text(
        '{"messageType":"app_command","req":"1","reg_id":"R1",'
        '"command":"set-alias","args":["alice"]}'
    )
    assert ev == [AppCommand("1", "R1", "A1", "set-alias", "alice")]
    assert (
        s.receive_text(
            '{"messageType":"app_command","req":"2","reg_id":"R1",'
            '"command":"set-alias","args":["' + "x" * 200 + '"]}'
        )
        == []
    )
    assert frames(s)[0]["code"] == 65008  # alias too long, Mi Push's code
    assert (
        s.receive_text(
            '{"messageType":"app_command","req":"3","reg_id":"R1",'
            '"command":"subscribe-topic","args":[" "]}'
        )
        == []
    )
    assert frames(s)[0]["code"] == 65013
    assert (
        s.receive_text(
            '{"messageType":"app_command","req":"4","reg_id":"R1","command":"fly","args":["x"]}'
        )
        == []
    )
    assert frames(s)[0]["code"] == codes.UNKNOWN_COMMAND


def test_ack_click_unregister_events() -> None:
    s = registered()
    assert s.receive_text(
        '{"messageType":"ack","updates":[{"reg_id":"R1","seq":3,"id":"m"},'
        '{"reg_id":"R1","seq":0,"id":"e"}]}'
    ) == [Acked((("R1", 3, "m"),))]
    assert s.receive_text('{"messageType":"ack","updates":[{"reg_id":"R1","seq":-1}]}') == []
    assert frames(s)[0]["code"] == codes.BAD_FRAME
    assert s.receive_text('{"messageType":"click","reg_id":"R1","id":"m"}') == [
        Clicked("R1", "A1", "m")
    ]
    assert s.receive_text('{"messageType":"app_unregister","req":"5","reg_id":"R1"}') == [
        AppUnregister("5", "R1", "A1")
    ]
    s.unregister_done("5", "R1")
    assert s.apps == {}


def test_delivery_frames() -> None:
    body = '{"title":"t","extra":{"k":"v"}}'
    note = json.loads(delivery_frame(Delivery("R1", 4, "m1", body, 0)))
    assert note == {
        "messageType": "notification",
        "reg_id": "R1",
        "seq": 4,
        "id": "m1",
        "message": {"title": "t", "extra": {"k": "v"}},
    }
    marker = json.loads(delivery_frame(Delivery("R1", 5, None, None, 0)))
    assert marker == {"messageType": "resync", "reg_id": "R1", "seq": 5, "id": ""}


def test_consent_frame_agree_and_withdraw() -> None:
    from tidings.protocol.session import ConsentChange

    s = registered()
    ev = s.receive_text(
        '{"messageType":"consent","req":"7","reg_id":"R1","version":"v2","agreed":true}'
    )
    assert ev == [ConsentChange("7", "R1", "A1", "v2", True)]
    ev = s.receive_text('{"messageType":"consent","req":"8","reg_id":"R1","agreed":false}')
    assert ev == [ConsentChange("8", "R1", "A1", None, False)]
    s.consent_result("8", "R1", False, "v2")
    assert frames(s) == [
        {
            "messageType": "consent",
            "req": "8",
            "reg_id": "R1",
            "agreed": False,
            "version": "v2",
            "code": 0,
        }
    ]


@pytest.mark.parametrize(
    "frame",
    [
        '{"messageType":"consent","req":"1","reg_id":"R1","agreed":true}',
        '{"messageType":"consent","req":"1","reg_id":"R1","agreed":"yes","version":"v"}',
        '{"messageType":"consent","req":"1","reg_id":"R1","agreed":true,"version":5}',
        '{"messageType":"consent","req":"1","reg_id":"R9","agreed":false}',
    ],
)
def test_bad_consent_frames_get_errors(frame: str) -> None:
    s = registered()
    assert s.receive_text(frame) == []
    (err,) = frames(s)
    assert err["messageType"] == "error" and err["req"] == "1"
    assert err["code"] in (codes.BAD_FRAME, codes.NOT_REGISTERED)


def test_revoke_frames_only_for_apps_registered_here() -> None:
    s = registered("R1")
    s.revoke("R1", 7)
    s.revoke("R2", 8)  # not registered on this connection: nothing
    assert frames(s) == [{"messageType": "revoke", "reg_id": "R1", "notify_id": 7}]
    s.close(1000, "bye")
    s.frames_to_send()
    s.revoke("R1", 9)  # closed: nothing
    assert frames(s) == []


def test_log_feature_log_frames_and_log_acks() -> None:
    s = ready()
    reg = '{"messageType":"app_register","req":"1","app_id":"A1","app_key":"k","package":"p"'
    [event] = s.receive_text(reg + ',"features":["log","later"]}')  # unknown ones are ignored
    assert isinstance(event, AppRegister) and event.log
    assert s.receive_text(reg + ',"features":null}') == [
        AppRegister("1", "A1", "k", "p", DeviceInfo(), False)
    ]
    assert s.receive_text(reg + ',"features":"log"}') == []
    assert frames(s)[0]["code"] == codes.BAD_FRAME
    s.register_ok("1", "A1", "R1", log=True)
    assert frames(s)[0]["features"] == ["log"]
    note = json.loads(log_frame("R1", LogEntry(7, "m1", '{"title":"t"}', 0)))
    assert note == {
        "messageType": "notification",
        "reg_id": "R1",
        "log": 7,
        "id": "m1",
        "message": {"title": "t"},
    }
    assert s.receive_text(
        '{"messageType":"ack","updates":[{"reg_id":"R1","log":7,"id":"m1"},'
        '{"reg_id":"R1","seq":2,"id":"m0"}]}'
    ) == [Acked((("R1", 2, "m0"),), (("R1", 7, "m1"),))]
    for bad in ("0", "-1", "true", '"7"', "1.5"):
        text = f'{{"messageType":"ack","updates":[{{"reg_id":"R1","log":{bad},"id":"m"}}]}}'
        assert s.receive_text(text) == []
        assert frames(s)[0]["code"] == codes.BAD_FRAME
