# SPDX-License-Identifier: MIT
"""h2raw: a small raw HTTP/2 client for requests that grpcio cannot make.

Built on python3-h2 and a plain socket, with no thread: nothing is read from
the socket unless a method that waits (wait, wait_until, pump) is called, so a
test can stall a peer simply by not calling them.  Every wait has a timeout.

    from h2raw import H2Client, grpc_frame

    with H2Client(server.h2c) as c:
        sid = c.request("/grpc.health.v1.Health/Check", grpc_frame(b""))
        r = c.wait(sid)
        assert r.http_status == 200 and r.status == 0

Sending:
  request(path, body, end_stream=True, headers=None, **hdr)  a new stream;
      grpc_headers(path, **hdr) builds its header list (method, content_type,
      te, grpc_timeout, encoding, extra; None for one of them leaves it out)
  call(path, body, timeout, **kw)           request() then wait()
  send_headers(sid, headers, end_stream)    any header list, nothing checked
                                            (a second one is request trailers)
  send_data(sid, data, end_stream)          DATA, waiting for flow-control window
  end_stream(sid)   empty DATA with END_STREAM
  reset(sid, code)  RST_STREAM (sets Response.reset_sent)     ping(data)  PING
  send_raw(bytes)   bytes on the socket as they are, h2's state is not told:
                    build frames with raw_frame(); in raw header blocks use
                    HPACK literals without indexing, or h2's encoder and the
                    server's decoder disagree from then on
Receiving (nothing is read outside these; each has a timeout):
  wait(sid, timeout)         until the peer ended or reset the stream: its
                             Response (TimeoutError / ConnectionError otherwise)
  wait_until(pred, timeout)  until pred() is true (TimeoutError otherwise)
  wait_closed(timeout)       True once the peer closed the socket
  pump(timeout)              one read; False once the peer closed the socket
Response, one per stream (response(sid)):
  .headers / .trailers   lists of (name, value) bytes, or None
  .data                  DATA payload bytes;  .messages  gRPC messages in it
  .ended                 END_STREAM seen;     .reset     RST_STREAM code or None
  .frames                what came, in order: "headers", "data", "trailers",
                         "end", "reset"
  .http_status, .status (grpc-status, from trailers or Trailers-Only headers),
  .message (grpc-message percent-decoded; .raw_message as sent),
  .header(name), .trailer(name) (raw bytes), .trailers_only
Connection: .goaway (error_code, last_stream_id, data) once GOAWAY came,
  .closed once the peer closed the socket, .pings_acked, .events (all h2
  events, in order).
Settings and flow control: H2Client(settings={SettingCodes.X: v}) sends our
  SETTINGS; window=N advertises N bytes for each stream and for the
  connection; window_updates=False never hands received bytes back (no
  WINDOW_UPDATE) until set_window_updates(True).
Unlike plain h2, the client does not answer frames that arrive on a stream it
reset with RST_STREAM of its own (RFC 9113 section 5.1 lets them be ignored),
so the resets the server counts are the ones the test sent.
"""
import select
import socket
import struct
import time
import urllib.parse

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hyperframe.frame

# RST_STREAM / GOAWAY error codes
NO_ERROR = h2.errors.ErrorCodes.NO_ERROR
PROTOCOL_ERROR = h2.errors.ErrorCodes.PROTOCOL_ERROR
INTERNAL_ERROR = h2.errors.ErrorCodes.INTERNAL_ERROR
REFUSED_STREAM = h2.errors.ErrorCodes.REFUSED_STREAM
CANCEL = h2.errors.ErrorCodes.CANCEL
ENHANCE_YOUR_CALM = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM

MAX_WINDOW = 2 ** 31 - 1


# ---------------------------------------------------------------- gRPC framing

def grpc_frame(payload, compressed=False, flag=None, length=None):
    """One length-prefixed gRPC message.  flag overrides the flag byte, length
    the announced length (to lie about it)."""
    if flag is None:
        flag = 1 if compressed else 0
    if length is None:
        length = len(payload)
    return struct.pack(">BI", flag, length) + payload


def grpc_messages(data):
    """[(flag, payload), …] of the complete messages in @data."""
    out, off = [], 0
    while off + 5 <= len(data):
        flag, length = struct.unpack_from(">BI", data, off)
        if off + 5 + length > len(data):
            break
        out.append((flag, bytes(data[off + 5:off + 5 + length])))
        off += 5 + length
    return out


def grpc_headers(path, authority="localhost", method="POST", content_type="application/grpc",
                 te="trailers", grpc_timeout=None, encoding=None, extra=()):
    """Request headers for @path; a None value leaves that header out."""
    h = [(":method", method), (":scheme", "http"), (":path", path), (":authority", authority)]
    for name, value in (("content-type", content_type), ("te", te),
                        ("grpc-timeout", grpc_timeout), ("grpc-encoding", encoding)):
        if value is not None:
            h.append((name, value))
    return h + list(extra)


def raw_frame(ftype, flags, stream_id, payload=b""):
    """The bytes of one HTTP/2 frame (for send_raw)."""
    n = len(payload)
    return struct.pack(">BHBBI", n >> 16, n & 0xFFFF, ftype, flags,
                       stream_id & 0x7FFFFFFF) + payload


# ---------------------------------------------------------------- a response

def _b(x):
    return x if isinstance(x, bytes) else x.encode("latin-1")


class Response:
    """What one stream received."""

    def __init__(self, stream_id):
        self.stream_id = stream_id
        self.headers = None
        self.trailers = None
        self.data = bytearray()
        self.ended = False
        self.reset = None
        self.reset_sent = None
        self.frames = []

    @property
    def done(self):
        return self.ended or self.reset is not None

    @property
    def messages(self):
        return [p for _, p in grpc_messages(self.data)]

    def _find(self, block, name):
        name = _b(name)
        for k, v in block or ():
            if k == name:
                return v
        return None

    def header(self, name):
        """Raw value of a response header (bytes) or None."""
        return self._find(self.headers, name)

    def trailer(self, name):
        """Raw value of a trailer, or of the header in a Trailers-Only response."""
        v = self._find(self.trailers, name)
        return v if v is not None or not self.trailers_only else self.header(name)

    @property
    def trailers_only(self):
        """One HEADERS frame ended the stream: no DATA, no trailers."""
        return self.frames[:2] == ["headers", "end"] and "data" not in self.frames

    @property
    def http_status(self):
        v = self.header(":status")
        return int(v) if v is not None else None

    @property
    def status(self):
        v = self.trailer("grpc-status")
        return int(v) if v is not None else None

    @property
    def raw_message(self):
        return self.trailer("grpc-message")

    @property
    def message(self):
        v = self.raw_message
        return urllib.parse.unquote_to_bytes(v).decode("utf-8", "replace") if v else ""

    def __repr__(self):
        return ("Response(stream=%d frames=%s headers=%r trailers=%r data=%d bytes reset=%r)"
                % (self.stream_id, self.frames, self.headers, self.trailers, len(self.data),
                   self.reset))


# ---------------------------------------------------------------- the client

class _Connection(h2.connection.H2Connection):
    """h2's connection, except that it never answers a frame that arrives on a
    stream already closed with RST_STREAM: RFC 9113 section 5.1 lets it be
    ignored, and h2's one RST_STREAM per DATA frame in flight would trip the
    server's Rapid Reset limit and blur the tests' own reset counts."""

    _receiving = False

    def receive_data(self, data):
        self._receiving = True
        try:
            return super().receive_data(data)
        finally:
            self._receiving = False

    def _prepare_for_sending(self, frames):
        if self._receiving:
            frames = [f for f in frames if not isinstance(f, hyperframe.frame.RstStreamFrame)]
        super()._prepare_for_sending(frames)


class H2Client:
    """One HTTP/2 prior-knowledge (h2c) connection to "host:port"."""

    def __init__(self, addr, timeout=5.0, window=None, window_updates=True, settings=None):
        host, _, port = addr.rpartition(":")
        self.timeout = timeout
        self.window_updates = window_updates
        self.responses = {}
        self.goaway = None
        self.closed = False
        self.pings_acked = 0
        self.events = []
        self._held = []  # (stream_id, bytes) not handed back while window_updates is off
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                        validate_outbound_headers=False,
                                        normalize_outbound_headers=False,
                                        validate_inbound_headers=False)
        self.conn = _Connection(config=cfg)
        local = dict(settings or {})
        if window is not None:
            local[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] = window
        self.conn.initiate_connection()
        if local:
            self.conn.update_settings(local)
        if window is not None and window > 65535:
            self.conn.increment_flow_control_window(window - 65535)
        self._flush()

    # -- context manager
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    # -- sending
    def _flush(self):
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def send_raw(self, data):
        """Writes @data to the socket untouched."""
        self._flush()
        self.sock.sendall(data)

    def new_stream(self):
        sid = self.conn.get_next_available_stream_id()
        self.responses[sid] = Response(sid)
        return sid

    def send_headers(self, stream_id, headers, end_stream=False):
        self.responses.setdefault(stream_id, Response(stream_id))
        self.conn.send_headers(stream_id, [(_b(k), _b(v)) for k, v in headers],
                               end_stream=end_stream)
        self._flush()

    def send_data(self, stream_id, data, end_stream=False, timeout=None):
        """Sends @data in frames as the peer's windows allow (waiting for them)."""
        data = memoryview(bytes(data))
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            room = min(self.conn.local_flow_control_window(stream_id),
                       self.conn.max_outbound_frame_size)
            if len(data) == 0 or room > 0:
                chunk = data[:room]
                data = data[len(chunk):]
                self.conn.send_data(stream_id, bytes(chunk),
                                    end_stream=end_stream and len(data) == 0)
                self._flush()
                if len(data) == 0:
                    return
                continue
            if time.monotonic() > deadline:
                raise TimeoutError("no flow-control window on stream %d" % stream_id)
            self.pump(0.05)

    def end_stream(self, stream_id):
        self.conn.end_stream(stream_id)
        self._flush()

    def reset(self, stream_id, error_code=CANCEL):
        self.conn.reset_stream(stream_id, error_code)
        self.response(stream_id).reset_sent = error_code
        self._flush()

    def ping(self, data=b"h2raw\0\0\0"):
        self.conn.ping(data)
        self._flush()

    def request(self, path, body=b"", end_stream=True, headers=None, **hdr):
        """Opens a stream: headers (grpc_headers(path, **hdr) unless given),
        then @body if any; END_STREAM after the last thing sent when asked.
        @return the stream id."""
        sid = self.new_stream()
        if headers is None:
            headers = grpc_headers(path, **hdr)
        self.send_headers(sid, headers, end_stream=end_stream and not body)
        if body:
            self.send_data(sid, body, end_stream=end_stream)
        return sid

    def call(self, path, body=b"", timeout=None, **kw):
        """request() and wait() in one."""
        return self.wait(self.request(path, body, **kw), timeout)

    # -- flow control
    def set_window_updates(self, on):
        """Turns handing received bytes back on or off; turning it on returns
        everything held so far."""
        self.window_updates = on
        if on:
            held, self._held = self._held, []
            for sid, n in held:
                self.conn.acknowledge_received_data(n, sid)
            self._flush()

    # -- receiving
    def response(self, stream_id):
        return self.responses.setdefault(stream_id, Response(stream_id))

    def pump(self, timeout):
        """Reads what arrives within @timeout seconds (at most one recv).
        @return False once the peer has closed the connection."""
        if self.closed:
            return False
        r, _, _ = select.select([self.sock], [], [], max(timeout, 0))
        if not r:
            return True
        try:
            data = self.sock.recv(1 << 20)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.closed = True
            return False
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            self.events.append(e)
            self.closed = True
            return False
        for ev in events:
            self._event(ev)
        try:
            self._flush()
        except OSError:
            self.closed = True
        return True

    def _event(self, ev):
        self.events.append(ev)
        sid = getattr(ev, "stream_id", None)
        r = self.response(sid) if sid else None
        if isinstance(ev, h2.events.ResponseReceived):
            r.headers = list(ev.headers)
            r.frames.append("headers")
        elif isinstance(ev, h2.events.TrailersReceived):
            r.trailers = list(ev.headers)
            r.frames.append("trailers")
        elif isinstance(ev, h2.events.DataReceived):
            r.data += ev.data
            r.frames.append("data")
            n = ev.flow_controlled_length
            if self.window_updates:
                self.conn.acknowledge_received_data(n, sid)
            elif n:
                self._held.append((sid, n))
        elif isinstance(ev, h2.events.StreamEnded):
            r.ended = True
            r.frames.append("end")
        elif isinstance(ev, h2.events.StreamReset):
            r.reset = ev.error_code
            r.frames.append("reset")
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = (ev.error_code, ev.last_stream_id, ev.additional_data)
        elif isinstance(ev, h2.events.PingAckReceived):
            self.pings_acked += 1

    def wait_until(self, pred, timeout=None):
        """Reads until pred() is true; TimeoutError when @timeout passes first.
        Returns pred()'s value; stops early (returning it) if the peer closes."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            v = pred()
            if v:
                return v
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("condition not met in time")
            if not self.pump(min(left, 0.2)):
                return pred()

    def wait(self, stream_id, timeout=None):
        """Reads until the stream has ended or been reset; its Response.
        TimeoutError after @timeout, ConnectionError if the connection ends first."""
        r = self.response(stream_id)
        try:
            self.wait_until(lambda: r.done or self.closed, timeout)
        except TimeoutError:
            raise TimeoutError("stream %d not done in time: %r" % (stream_id, r)) from None
        if not r.done:
            raise ConnectionError("connection ended before stream %d was done (goaway=%r): %r"
                                  % (stream_id, self.goaway, r))
        return r

    def wait_closed(self, timeout=None):
        """True once the peer has closed the connection (GOAWAY alone is not enough)."""
        try:
            return self.wait_until(lambda: self.closed, timeout)
        except TimeoutError:
            return False
