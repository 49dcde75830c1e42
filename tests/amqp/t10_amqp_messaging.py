"""Integration scenario 10: AMQP 1.0 messaging against a real broker
(hamq-journal --spawn-workers 2) with the real Python Proton client: message
sections carried intact, link credit, settle modes, every disposition
outcome, addresses and routing, the anonymous relay, large transfers, SASL,
and STOMP <-> AMQP interop on one queue."""
import os
import sys
import time

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


def test_durable_message_keeps_header_properties_annotations_and_body_sections():
    from proton import Message, symbol
    q = "queue://" + at.uniq("sections")
    c = conn()
    s = c.create_sender(q)
    sent = Message(body="hello amqp", durable=True, priority=7, id="id-1",
                   correlation_id="corr-9", subject="subj", content_type="text/plain",
                   reply_to="replies", group_id="g1",
                   properties={"color": "red", "n": 42, "pi": 3.25, "ok": True},
                   annotations={symbol("x-opt-test"): "ann"})
    s.send(sent)
    r = c.create_receiver(q, credit=1)
    m = r.receive(timeout=10)
    r.accept()
    assert m.body == "hello amqp", m.body
    assert m.durable and m.priority == 7
    assert (m.id, m.correlation_id, m.subject) == ("id-1", "corr-9", "subj")
    assert (m.content_type, m.reply_to, m.group_id) == ("text/plain", "replies", "g1")
    assert m.properties == {"color": "red", "n": 42, "pi": 3.25, "ok": True}, m.properties
    assert m.annotations.get(symbol("x-opt-test")) == "ann", m.annotations
    assert m.delivery_count == 0
    c.close()


def test_binary_body_with_nul_bytes_arrives_as_a_data_section():
    from proton import Message
    q = "queue://" + at.uniq("bin")
    body = bytes(range(256)) * 40
    c = conn()
    c.create_sender(q).send(Message(body=body, inferred=True))
    r = c.create_receiver(q, credit=1)
    m = r.receive(timeout=10)
    r.accept()
    assert m.body == body and m.inferred
    c.close()


def test_receiver_with_credit_1_gets_exactly_one_message_and_the_rest_stay_queued():
    from proton import Message
    q = "queue://" + at.uniq("credit")
    c = conn()
    s = c.create_sender(q)
    for i in range(5):
        s.send(Message(body="m%d" % i))
    one = at.exact_receiver(c, q)
    one.link.flow(1)
    m = one.receive(timeout=10)
    assert m.body == "m0"
    at.pump(c, 0.5)  # any extra transfer would arrive now
    assert len(one.fetcher.incoming) == 0, "a second message arrived with credit 1"
    other = conn()
    rest = at.drain(other, q)
    assert [x.body for x in rest] == ["m1", "m2", "m3", "m4"], [x.body for x in rest]
    one.accept()
    c.close()
    other.close()


def test_accepted_consumes_and_released_redelivers_with_count_unchanged():
    from proton import Delivery, Message
    q = "queue://" + at.uniq("release")
    c = conn()
    c.create_sender(q).send(Message(body="r"))
    r = at.exact_receiver(c, q)
    m, d = at.take_delivery(r)
    at.settle(c, d, Delivery.RELEASED)
    m2, d2 = at.take_delivery(r)
    assert m2.body == "r" and m2.delivery_count == 0, m2.delivery_count
    at.settle(c, d2, Delivery.ACCEPTED)
    assert at.drain(c, q, 0.5) == []
    c.close()


def test_modified_delivery_failed_raises_the_delivery_count():
    from proton import Delivery, Message
    q = "queue://" + at.uniq("modified")
    c = conn()
    c.create_sender(q).send(Message(body="f"))
    r = at.exact_receiver(c, q)
    counts = []
    for _ in range(3):
        m, d = at.take_delivery(r)
        counts.append(m.delivery_count)
        at.settle(c, d, Delivery.MODIFIED, failed=True)
    assert counts == [0, 1, 2], counts
    m, d = at.take_delivery(r)
    assert not m.first_acquirer
    at.settle(c, d, Delivery.ACCEPTED)
    c.close()


def test_modified_undeliverable_here_goes_to_another_consumer_only():
    from proton import Delivery, Message
    q = "queue://" + at.uniq("undeliv")
    c = conn()
    c.create_sender(q).send(Message(body="u"))
    r = at.exact_receiver(c, q)
    m, d = at.take_delivery(r)
    r.link.flow(5)
    at.settle(c, d, Delivery.MODIFIED, failed=True, undeliverable=True)
    at.pump(c, 0.5)
    assert len(r.fetcher.incoming) == 0, "redelivered to the consumer that refused it"
    other = conn()
    got = at.drain(other, q)
    assert [x.body for x in got] == ["u"]
    assert got[0].delivery_count == 1
    c.close()
    other.close()


def test_rejected_message_goes_to_the_dead_letter_queue():
    from proton import Delivery, Message
    name = at.uniq("reject")
    c = conn()
    c.create_sender("queue://" + name).send(Message(body="poison-" + name))
    r = at.exact_receiver(c, "queue://" + name)
    m, d = at.take_delivery(r)
    at.settle(c, d, Delivery.REJECTED)
    assert at.drain(c, "queue://" + name, 0.5) == []
    dlq = at.drain(c, "queue://DLQ", 1.0)
    assert any(x.body == "poison-" + name for x in dlq), [x.body for x in dlq]
    c.close()


def test_presettled_receiver_and_presettled_sender_move_messages():
    from proton import Message
    q = "queue://" + at.uniq("presettled")
    c = conn()
    s = c.create_sender(q, options=at.Presettled())
    for i in range(20):
        s.send(Message(body=i))
    r = c.create_receiver(q, credit=50, options=at.Presettled())
    got = [r.receive(timeout=10).body for _ in range(20)]
    assert got == list(range(20)), got
    c.close()


def test_topic_capability_fans_out_to_every_subscriber():
    from proton import Message
    t = at.uniq("topic")
    c = conn()
    subs = [c.create_receiver(t, credit=10, options=at.Caps("topic")) for _ in range(3)]
    at.pump(c, 0.3)
    s = c.create_sender(t, options=at.Caps("topic"))
    s.send(Message(body="news"))
    for r in subs:
        assert r.receive(timeout=10).body == "news"
        r.accept()
    c.close()


def test_artemis_multicast_and_anycast_capabilities_route_like_topic_and_queue():
    from proton import Message
    a = at.uniq("multi")
    c = conn()
    subs = [c.create_receiver(a, credit=10, options=at.Caps("multicast")) for _ in range(2)]
    at.pump(c, 0.3)
    c.create_sender(a, options=at.Caps("multicast")).send(Message(body="both"))
    for r in subs:
        assert r.receive(timeout=10).body == "both"
        r.accept()
    q = at.uniq("any")
    c.create_sender(q, options=at.Caps("anycast")).send(Message(body="one"))
    assert [m.body for m in at.drain(c, q, options=at.Caps("anycast"))] == ["one"]
    c.close()


def test_anonymous_relay_routes_each_message_by_its_to_field():
    from proton import Message
    q1, q2 = at.uniq("relay1"), at.uniq("relay2")
    c = conn()
    s = c.create_sender(None)
    s.send(Message(address="queue://" + q1, body="to-1"))
    s.send(Message(address="queue://" + q2, body="to-2"))
    assert [m.body for m in at.drain(c, "queue://" + q1)] == ["to-1"]
    assert [m.body for m in at.drain(c, "queue://" + q2)] == ["to-2"]
    c.close()


def test_anonymous_relay_without_to_is_rejected_and_the_link_keeps_working():
    from proton import Message
    from proton.utils import SendException
    q = at.uniq("relay3")
    c = conn()
    s = c.create_sender(None)
    try:
        s.send(Message(body="nowhere"))
        raise AssertionError("a message without 'to' was accepted by the relay")
    except SendException:
        pass
    s.send(Message(address="queue://" + q, body="ok"))
    assert [m.body for m in at.drain(c, "queue://" + q)] == ["ok"]
    c.close()


def test_browse_link_sees_messages_without_consuming_them():
    from proton import Message
    q = "queue://" + at.uniq("browse")
    c = conn()
    s = c.create_sender(q)
    for i in range(3):
        s.send(Message(body="b%d" % i))
    b = c.create_receiver(q, credit=10, options=at.Browse())
    seen = [b.receive(timeout=10).body for _ in range(3)]
    assert seen == ["b0", "b1", "b2"], seen
    b.close()
    assert [m.body for m in at.drain(c, q)] == ["b0", "b1", "b2"]
    c.close()


def test_large_message_spanning_many_frames_arrives_intact():
    from proton import Message
    q = "queue://" + at.uniq("large")
    body = os.urandom(3 * 1024 * 1024)
    c = conn(timeout=30)
    c.create_sender(q).send(Message(body=body, inferred=True, durable=True))
    r = c.create_receiver(q, credit=1)
    m = r.receive(timeout=30)
    r.accept()
    assert m.body == body
    c.close()


def test_stomp_message_reaches_an_amqp_consumer_with_body_type_and_headers():
    name = at.uniq("s2a")
    st = ht.stomp_conn(broker().stomp_port)
    st.send("/queue/" + name, "from stomp", content_type="text/plain",
            headers={"color": "blue", "receipt": "r", "persistent": "true"})
    st.collector.wait(lambda: "r" in st.collector.receipts)
    c = conn()
    got = at.drain(c, "queue://" + name)
    assert len(got) == 1
    m = got[0]
    assert m.body == "from stomp", m.body
    assert m.content_type == "text/plain"
    assert m.properties.get("color") == "blue", m.properties
    assert m.durable
    st.disconnect()
    c.close()


def test_amqp_message_reaches_a_stomp_consumer_with_body_type_and_properties():
    from proton import Message
    name = at.uniq("a2s")
    c = conn()
    c.create_sender("queue://" + name).send(
        Message(body="from amqp", content_type="text/plain",
                properties={"color": "green", "n": 7}, correlation_id="c-1"))
    c.create_sender("queue://" + name).send(Message(body=b"\x00\x01bin", inferred=True))
    st = ht.stomp_conn(broker().stomp_port)
    st.subscribe("/queue/" + name, id="1", ack="auto")
    msgs = st.collector.wait_messages(2)
    first = msgs[0]
    assert first.body == "from amqp", first.body
    assert first.headers.get("content-type", "").startswith("text/plain"), first.headers
    assert first.headers.get("color") == "green" and first.headers.get("n") == "7"
    assert first.headers.get("correlation-id") == "c-1"
    st.disconnect()
    c.close()


def test_amqp_and_stomp_share_a_queue_in_both_directions():
    from proton import Message
    name = at.uniq("mix")
    c = conn()
    st = ht.stomp_conn(broker().stomp_port)
    for i in range(5):
        c.create_sender("queue://" + name).send(Message(body="a%d" % i))
        st.send("/queue/" + name, "s%d" % i, headers={"receipt": "r%d" % i})
    st.collector.wait(lambda: len(st.collector.receipts) == 5)
    # python-stomp sends content-length without content-type: a bytes message (data section)
    bodies = sorted(m.body.decode() if isinstance(m.body, bytes) else m.body
                    for m in at.drain(c, "queue://" + name))
    assert bodies == sorted(["a%d" % i for i in range(5)] + ["s%d" % i for i in range(5)])
    st.disconnect()
    c.close()


def test_all_protocols_port_sniffs_amqp():
    from proton import Message
    q = "queue://" + at.uniq("sniff")
    c = at.connect(broker().all_port)
    c.create_sender(q).send(Message(body="via 61616"))
    assert [m.body for m in at.drain(c, q)] == ["via 61616"]
    c.close()


def _secured_broker():
    d = ht.workdir("hamq-sasl-")
    users = os.path.join(d, "users")
    with open(users, "w") as f:
        f.write("# hamq users\nalice:s3cret:with:colons\n\nbob:pw\n")
    cfg = os.path.join(d, "hamq.conf")
    with open(cfg, "w") as f:
        f.write("[security]\nallow_anonymous = false\nusers_file = %s\n" % users)
    b = ht.Broker(workers=1, config=cfg).start()
    ht.wait_port(b.amqp_port)
    return b


def test_sasl_plain_checks_the_users_file_and_anonymous_can_be_refused():
    from proton import Message
    from proton import ConnectionException
    b = _secured_broker()
    try:
        c = at.connect(b.amqp_port, user="alice", password="s3cret:with:colons")
        q = "queue://" + at.uniq("sasl")
        c.create_sender(q).send(Message(body="authenticated"))
        assert [m.body for m in at.drain(c, q)] == ["authenticated"]
        c.close()
        for kw in ({"user": "alice", "password": "wrong"}, {"user": "nobody", "password": "x"},
                   {}):
            try:
                at.connect(b.amqp_port, timeout=5, **kw).close()
                raise AssertionError("connection with %r was accepted" % (kw,))
            except ConnectionException as e:
                assert "auth" in str(e).lower() or "sasl" in str(e).lower(), str(e)
        assert "authentication failed for user 'alice'" in b.log_text()
    finally:
        b.stop()


def test_message_over_the_maximum_size_detaches_the_link_with_a_clear_error():
    from proton import Message
    from proton.utils import LinkDetached, SendException
    d = ht.workdir("hamq-max-")
    cfg = os.path.join(d, "hamq.conf")
    with open(cfg, "w") as f:
        f.write("[broker]\nmax_message_size = 256K\n")
    b = ht.Broker(workers=1, config=cfg).start()
    try:
        ht.wait_port(b.amqp_port)
        c = at.connect(b.amqp_port, timeout=15)
        q = "queue://" + at.uniq("max")
        s = c.create_sender(q)
        s.send(Message(body=b"x" * 100000, inferred=True))
        try:
            s.send(Message(body=b"y" * (600 * 1024), inferred=True))
            raise AssertionError("an oversized message was accepted")
        except (LinkDetached, SendException) as e:
            assert "message-size-exceeded" in str(e) or "maximum" in str(e), str(e)
        got = at.drain(c, q)
        assert len(got) == 1 and len(got[0].body) == 100000
        c.close()
    finally:
        b.stop()


def teardown():
    if B is not None:
        B.stop()


if __name__ == "__main__":
    try:
        ht.main({k: v for k, v in globals().items() if k.startswith("test_")})
    finally:
        teardown()
