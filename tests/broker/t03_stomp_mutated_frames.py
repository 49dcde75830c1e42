"""Integration scenario 03: mutated STOMP frames against a running broker.
Valid conversations are mutated at random (bytes flipped, inserted, deleted,
cut short, huge lengths) and sent over many connections, in random chunk
sizes. Bounded in count and time. Afterwards the broker still answers a fresh
client, no worker has crashed (none was restarted), and the core is alive."""
import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hamqtest as ht  # noqa: E402

SEED = int(os.environ.get("HAMQ_FUZZ_SEED", str(int(time.time()))))
CONNECTIONS = int(os.environ.get("HAMQ_FUZZ_CONNECTIONS", "1500"))
TIME_LIMIT = 40.0

VALID = [
    b"CONNECT\naccept-version:1.0,1.1,1.2\nhost:x\nheart-beat:0,0\n\n\x00",
    b"SEND\ndestination:/queue/fz\ncontent-type:text/plain\nreceipt:r1\n\nhello\x00",
    b"SEND\ndestination:/topic/fz\ncontent-length:5\npersistent:true\n\nab\x00cd\x00",
    b"SUBSCRIBE\nid:1\ndestination:/queue/fz\nack:client-individual\n\n\x00",
    b"SUBSCRIBE\nid:2\ndestination:/topic/fz\nack:client\nselector:a = 'b'\n\n\x00",
    b"BEGIN\ntransaction:t1\n\n\x00",
    b"SEND\ndestination:/queue/fz\ntransaction:t1\n\nin tx\x00",
    b"COMMIT\ntransaction:t1\nreceipt:c\n\n\x00",
    b"ACK\nid:1-1\n\n\x00",
    b"NACK\nid:1-1\n\n\x00",
    b"UNSUBSCRIBE\nid:1\n\n\x00",
    b"SEND\ndestination:/queue/a\\cb\nk\\nk:v\\\\\n\nescaped\x00",
    b"DISCONNECT\nreceipt:bye\n\n\x00",
]


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randint(0, 7)
        pos = rng.randint(0, max(0, len(data) - 1))
        if op == 0 and data:
            data[pos] = rng.randint(0, 255)
        elif op == 1:
            data[pos:pos] = bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 16)))
        elif op == 2 and data:
            del data[pos:pos + rng.randint(1, 8)]
        elif op == 3:
            data = data[:pos]
        elif op == 4:
            data[pos:pos] = b"content-length:%d\n" % rng.choice([0, 1, 7, 2**31, 2**40, -1])
        elif op == 5:
            data[pos:pos] = b"\n" * rng.randint(1, 40)
        elif op == 6:
            data[pos:pos] = b"h" * rng.randint(1, 70000) + b":v\n"
        else:
            data[pos:pos] = b":" * rng.randint(1, 5)
    return bytes(data)


def conversation(rng):
    frames = [VALID[0]] + [rng.choice(VALID[1:]) for _ in range(rng.randint(0, 6))]
    k = rng.randrange(len(frames))
    frames[k] = mutate(rng, frames[k])
    if rng.random() < 0.1:
        frames = [os.urandom(rng.randint(1, 300))]
    return b"".join(frames)


def send_in_chunks(rng, port, data):
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    try:
        i = 0
        while i < len(data):
            n = rng.choice([1, 2, 7, 64, 1024, 65536])
            s.sendall(data[i:i + n])
            i += n
        s.settimeout(0.05 if rng.random() < 0.9 else 0.5)
        try:
            while s.recv(65536):
                pass
        except (socket.timeout, ConnectionResetError):
            pass
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        pass
    finally:
        s.close()


def test_mutated_frames_never_crash_the_broker_and_it_keeps_serving():
    rng = random.Random(SEED)
    print("# seed %d (replay with HAMQ_FUZZ_SEED=%d)" % (SEED, SEED), flush=True)
    with ht.Broker(workers=2) as b:
        t0 = time.monotonic()
        done = 0
        while done < CONNECTIONS and time.monotonic() - t0 < TIME_LIMIT:
            port = b.stomp_port if rng.random() < 0.7 else b.all_port
            send_in_chunks(rng, port, conversation(rng))
            done += 1
        print("# %d mutated conversations in %.1fs" % (done, time.monotonic() - t0), flush=True)
        assert done >= 100, "only %d conversations ran" % done
        assert b.proc.poll() is None, "the core died"
        c = ht.stomp_conn(b.stomp_port)
        c.subscribe("/queue/after-fuzz", id="1", ack="auto", headers={"receipt": "s"})
        c.collector.wait(lambda: "s" in c.collector.receipts)
        c.send("/queue/after-fuzz", "still here")
        assert c.collector.wait_messages(1)[0].body == "still here"
        c.disconnect()
        log = b.log_text()
        assert "restarting it" not in log, "a worker crashed:\n" + log[-3000:]
        assert "AddressSanitizer" not in log and "runtime error" not in log, log[-3000:]


if __name__ == "__main__":
    ht.main(globals())
