"""Integration scenario 13: the fields the worker reads from a producer's AMQP
message in place (daemons/worker_amqp_scan.c, no Proton decode) reach the
broker intact: ids of every type, header fields, application properties of
every integer width for selectors and STOMP, and a transfer that is not an
AMQP message is refused with amqp:decode-error while the link keeps working;
a dead-lettered message shows its origin in message annotations (Artemis'
x-opt-ORIG-ADDRESS, x-opt-ORIG-QUEUE, x-opt-ORIG-MESSAGE-ID)."""
import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import amqptest as at  # noqa: E402
from amqptest import ht  # noqa: E402

B = None


def broker():
    global B
    if B is None or B.proc.poll() is not None:
        B = ht.Broker(workers=2).start()
        ht.wait_port(B.amqp_port)
    return B


def conn(**kw):
    return at.connect(broker().amqp_port, **kw)


def test_ids_header_and_typed_properties_reach_a_stomp_consumer_as_text():
    from proton import Message, byte, int32, short, ubyte, uint, ulong, ushort
    name = at.uniq("fields")
    u = uuid.UUID("12345678-9abc-def0-1234-56789abcdef0")
    c = conn()
    s = c.create_sender("queue://" + name)
    props = {"b": byte(-3), "ub": ubyte(200), "s": short(-300), "us": ushort(60000),
             "i": int32(-70000), "ui": uint(4000000000), "l": -5000000000, "ul": ulong(7),
             "d": 2.5, "t": True, "str": "text", "bin": b"\x00\x01"}
    s.send(Message(id=ulong(42), correlation_id=u, subject="subj", reply_to="queue://r",
                   group_id="g1", content_type="text/plain", durable=True, priority=7,
                   properties=props, body="x"))
    s.send(Message(id=b"\xab\xcd", correlation_id="plain", body="y"))
    st = ht.stomp_conn(broker().stomp_port)
    st.subscribe("/queue/" + name, id="1", ack="auto")
    first, second = st.collector.wait_messages(2)
    h = first.headers
    assert h.get("correlation-id") == str(u), h
    assert h.get("reply-to") == "queue://r" and h.get("priority") == "7", h
    assert h.get("persistent") == "true", h
    want = {"b": "-3", "ub": "200", "s": "-300", "us": "60000", "i": "-70000",
            "ui": "4000000000", "l": "-5000000000", "ul": "7", "str": "text"}
    for k, v in want.items():
        assert h.get(k) == v, (k, h)
    assert float(h.get("d")) == 2.5 and h.get("t") in ("true", "1"), h
    assert "bin" not in h, h
    assert second.headers.get("correlation-id") == "plain", second.headers
    st.disconnect()
    c.close()


def test_a_selector_matches_integer_properties_of_every_width():
    from proton import Message, byte, int32, short
    from proton.reactor import Selector
    name = at.uniq("sel")
    c = conn()
    s = c.create_sender("queue://" + name)
    for i, v in enumerate([byte(5), short(50), int32(500), 5000, byte(-1)]):
        s.send(Message(properties={"n": v, "k": i}, body="m%d" % i))
    got = at.drain(c, "queue://" + name, options=Selector("n > 4"))
    assert sorted(m.body for m in got) == ["m0", "m1", "m2", "m3"], [m.body for m in got]
    rest = at.drain(c, "queue://" + name)
    assert [m.body for m in rest] == ["m4"], [m.body for m in rest]
    c.close()


def _send_raw(c, sender, payload, tag):
    dlv = sender.link.delivery(tag)
    sender.link.send(payload)
    sender.link.advance()
    c.wait(lambda: dlv.remote_state != 0 or dlv.settled, timeout=10,
           msg="no outcome for a raw transfer")
    return dlv


def test_a_transfer_that_is_not_an_amqp_message_is_rejected_with_decode_error():
    from proton import Delivery, Message
    name = at.uniq("bad")
    c = conn()
    s = c.create_sender("queue://" + name)
    bad = [
        b"\x00\x53\x77\xa1\x10abc",          # amqp-value string longer than the transfer
        b"\xa1\x03abc",                      # a bare string: not a section
        b"\x00\x53\x70\xc0\x05\x03\x41",     # header list whose count overruns its size
        b"\x00\x53\x74\xc1\x03\x01\x41",     # a map with an odd number of entries
        b"\x00\x53\x77\x99",                 # an unknown constructor
        b"\x00\x53\x73\x45" * 2 + b"\x00",   # a trailing descriptor with no value
    ]
    for i, payload in enumerate(bad):
        dlv = _send_raw(c, s, payload, "bad%d" % i)
        assert dlv.remote_state == Delivery.REJECTED, (payload, dlv.remote_state)
        cond = dlv.remote.condition
        assert cond is not None and cond.name == "amqp:decode-error", (payload, cond)
    s.send(Message(body="good"))
    assert [m.body for m in at.drain(c, "queue://" + name)] == ["good"]
    c.close()


def test_an_amqp_value_holding_a_described_type_is_carried_intact():
    from proton import Described, Message, symbol
    name = at.uniq("described")
    c = conn()
    body = Described(symbol("x:point"), [1, 2])
    c.create_sender("queue://" + name).send(Message(body=body))
    got = at.drain(c, "queue://" + name)
    assert len(got) == 1 and got[0].body == body, [m.body for m in got]
    c.close()


def test_an_empty_list_header_and_list0_properties_are_valid_sections():
    from proton import Delivery
    name = at.uniq("list0")
    c = conn()
    s = c.create_sender("queue://" + name)
    # header = list0, properties = list0, amqp-value "hi"
    dlv = _send_raw(c, s, b"\x00\x53\x70\x45\x00\x53\x73\x45\x00\x53\x77\xa1\x02hi", "ok")
    assert dlv.remote_state == Delivery.ACCEPTED, dlv.remote_state
    assert [m.body for m in at.drain(c, "queue://" + name)] == ["hi"]
    c.close()


def _reject_once(c, address):
    from proton import Delivery
    r = at.exact_receiver(c, address)
    m, d = at.take_delivery(r)
    at.settle(c, d, Delivery.REJECTED)
    r.close()


def _from_dlq(c, body):
    for m in at.drain(c, "queue://DLQ", 1.0):
        if m.body == body:
            return m
    raise AssertionError("%r is not on DLQ" % body)


def test_a_dead_lettered_amqp_message_names_its_origin_in_message_annotations():
    from proton import Message, symbol
    name = at.uniq("dlqann")
    body = "poison-" + name
    c = conn()
    c.create_sender("queue://" + name).send(Message(
        body=body, annotations={symbol("x-opt-keep"): "kept"}, properties={"p": 1}))
    _reject_once(c, "queue://" + name)
    m = _from_dlq(c, body)
    ann = m.annotations or {}
    assert ann.get(symbol("x-opt-ORIG-ADDRESS")) == name, ann
    assert ann.get(symbol("x-opt-ORIG-QUEUE")) == name, ann
    assert isinstance(ann.get(symbol("x-opt-ORIG-MESSAGE-ID")), int), ann
    assert ann.get(symbol("x-opt-keep")) == "kept", ann
    assert m.properties.get("p") == 1, m.properties
    c.close()


def test_a_dead_lettered_message_without_annotations_gets_them_and_stomp_ones_too():
    from proton import Message, symbol
    name = at.uniq("dlqann2")
    c = conn()
    c.create_sender("queue://" + name).send(Message(body="plain-" + name, durable=True))
    _reject_once(c, "queue://" + name)
    m = _from_dlq(c, "plain-" + name)
    assert (m.annotations or {}).get(symbol("x-opt-ORIG-QUEUE")) == name, m.annotations
    assert m.durable
    sname = at.uniq("dlqstomp")
    st = ht.stomp_conn(broker().stomp_port)
    st.send("/queue/" + sname, "from-stomp-" + sname, content_type="text/plain")
    st.disconnect()
    _reject_once(c, "queue://" + sname)
    m = _from_dlq(c, "from-stomp-" + sname)
    assert (m.annotations or {}).get(symbol("x-opt-ORIG-ADDRESS")) == sname, m.annotations
    c.close()


def test_a_dead_lettered_message_redelivered_from_the_dlq_keeps_annotations_and_count():
    from proton import Delivery, Message, symbol
    from proton.reactor import Selector
    name = at.uniq("dlqredo")
    c = conn()
    c.create_sender("queue://" + name).send(Message(
        body="again-" + name, annotations={symbol("x-opt-keep"): 7}))
    _reject_once(c, "queue://" + name)
    r = at.exact_receiver(c, "queue://DLQ",
                          options=Selector("_AMQ_ORIG_QUEUE = '%s'" % name))
    m, d = at.take_delivery(r)
    at.settle(c, d, Delivery.MODIFIED, failed=True)
    m, d = at.take_delivery(r)
    assert m.body == "again-" + name and m.delivery_count == 1, (m.body, m.delivery_count)
    ann = m.annotations or {}
    assert ann.get(symbol("x-opt-ORIG-QUEUE")) == name and ann.get(symbol("x-opt-keep")) == 7, ann
    at.settle(c, d, Delivery.ACCEPTED)
    c.close()


def teardown():
    if B is not None:
        B.stop()


if __name__ == "__main__":
    try:
        ht.main({k: v for k, v in globals().items() if k.startswith("test_")})
    finally:
        teardown()
