"""A TCP proxy that can cut a link the way a network partition does, for the fault tests.

`tc netem` is not available on the development machines, and a proxy is deterministic: every
connection between two of our processes that should be cuttable goes through one FaultProxy.

Modes:
  pass       bytes flow.
  blackhole  nothing flows in either direction; connections stay open and new ones are accepted
             but not forwarded. Like an iptables DROP rule: after heal(), what was held is
             delivered, as TCP retransmission would, unless an end gave up meanwhile.
  reset      every open connection is closed with RST, and so is every new one (iptables REJECT
             --reject-with tcp-reset).
  delay      every chunk is held `delay_ms` before it is forwarded.
"""
import socket
import struct
import threading
import time


class FaultProxy:
    def __init__(self, listen_port, target_port, host="127.0.0.1"):
        self.target = (host, target_port)
        self.mode = "pass"
        self.delay_ms = 0
        self._lock = threading.Lock()
        self._conns = []
        self._closed = False
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, listen_port))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    # --- control ---

    def blackhole(self):
        self.mode = "blackhole"

    def reset(self):
        self.mode = "reset"
        with self._lock:
            conns, self._conns = self._conns, []
        for pair in conns:
            for s in pair:
                _rst(s)

    def delay(self, ms):
        self.delay_ms = ms
        self.mode = "delay"

    def heal(self):
        self.mode = "pass"

    def close(self):
        self._closed = True
        self._thread.join()
        self._listener.close()
        self.reset()

    # --- plumbing ---

    def _accept_loop(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if self.mode == "reset":
                _rst(client)
                continue
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client):
        while self.mode == "blackhole" and not self._closed:  # the SYN is "dropped": wait
            time.sleep(0.01)
        try:
            upstream = socket.create_connection(self.target, timeout=2)
        except OSError:
            _rst(client)
            return
        pair = (client, upstream)
        with self._lock:
            self._conns.append(pair)
        for src, dst in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(src, dst, pair), daemon=True).start()

    def _pump(self, src, dst, pair):
        try:
            src.settimeout(0.05)
            while not self._closed:
                if self.mode == "reset":
                    # A connection made while reset() ran (its upstream connect was under way)
                    # escaped its list: reset it here, so nothing flows in reset mode.
                    for s in pair:
                        _rst(s)
                    return
                if self.mode == "blackhole":
                    time.sleep(0.01)  # read nothing: the sender's window fills, as with DROP
                    continue
                try:
                    data = src.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                while self.mode == "blackhole" and not self._closed:
                    time.sleep(0.01)
                if self.mode == "delay":
                    time.sleep(self.delay_ms / 1000.0)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                if pair in self._conns:
                    self._conns.remove(pair)
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


def _rst(sock):
    """Closes with RST instead of FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass
