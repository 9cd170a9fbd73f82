//! Server frames prepared once. Server-to-client frames are unmasked (RFC 6455 5.1), so a
//! message's WebSocket frame (header + payload) is the same bytes for every client: it is
//! built once when the message is built, and every socket is written from the same shared
//! `Bytes` (no per-client copy into a protocol library's write buffer).

use bytes::{BufMut, Bytes, BytesMut};
use hyper_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use hyper_tungstenite::tungstenite::Utf8Bytes;

/// What a queued frame is, for the queue's bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    /// A message (its one frame) that is never dropped once queued (results, status, `full`,
    /// `refresh`, a diff that also carries rows).
    Data,
    /// A `"superseded":true` diff: it carries nothing, so a list behind it may still supersede
    /// the list before it.
    Superseded,
    /// A one-frame `diff` whose only content is the on-course list. A later on-course list
    /// queued right behind it, before any byte of it was written, makes it redundant (lists
    /// are replaced whole): it is then sent as this `"superseded":true` diff of the same `seq`
    /// instead (its wire bytes, shared by every client).
    ListOnly {
        wire: Bytes,
        payload: usize,
    },
    Ping,
    Pong,
    Close,
}

/// One frame ready for the socket.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Frame {
    /// Header + payload, as written.
    pub(super) wire: Bytes,
    /// Payload bytes (the queue bound counts messages' payloads, as the JSON's length).
    pub(super) payload: usize,
    /// The message carries the event's whole on-course list (it supersedes a `ListOnly`
    /// frame queued right before it).
    pub(super) list: bool,
    pub(super) kind: Kind,
}

const FIN: u8 = 0x80;
const TEXT: u8 = 0x1;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// Header + payload of one unmasked, final frame.
fn encode(opcode: u8, payload: &[u8]) -> Bytes {
    let len = payload.len();
    let mut b = BytesMut::with_capacity(len + 10);
    b.put_u8(FIN | opcode);
    if len <= 125 {
        b.put_u8(len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        b.put_u8(126);
        b.put_u16(short);
    } else {
        b.put_u8(127);
        b.put_u64(len as u64);
    }
    b.put_slice(payload);
    b.freeze()
}

impl Frame {
    /// A message's text frame (one frame, however long: nothing is copied per client, so
    /// fragmenting a large `full` no longer saves memory).
    pub(super) fn text(msg: &Utf8Bytes) -> Frame {
        Frame {
            wire: encode(TEXT, msg.as_bytes()),
            payload: msg.len(),
            list: false,
            kind: Kind::Data,
        }
    }

    /// The frame of a `diff` frame's JSON, with what the queue needs to know about it:
    /// `list` when it carries the on-course list, `stub` (the `superseded` diff of its `seq`)
    /// when the list is all it carries.
    pub(super) fn diff(msg: &Utf8Bytes, list: bool, stub: Option<&Utf8Bytes>) -> Frame {
        let mut f = Frame::text(msg);
        f.list = list;
        if let Some(stub) = stub {
            f.kind = Kind::ListOnly {
                wire: encode(TEXT, stub.as_bytes()),
                payload: stub.len(),
            };
        }
        f
    }

    /// The `"superseded":true` diff of a change the hub folded into a later message.
    pub(super) fn superseded(msg: &Utf8Bytes) -> Frame {
        Frame {
            kind: Kind::Superseded,
            ..Frame::text(msg)
        }
    }

    /// An empty ping.
    pub(super) fn ping() -> Frame {
        Frame::control(PING, &[], Kind::Ping)
    }

    /// The pong answering a ping with this payload (at most 125 bytes: checked by the
    /// reader, which refuses longer control frames).
    pub(super) fn pong(payload: &[u8]) -> Frame {
        Frame::control(PONG, payload, Kind::Pong)
    }

    /// A close frame: the code, then the reason (our reasons are short ASCII texts).
    pub(super) fn close(code: CloseCode, reason: &str) -> Frame {
        let mut p = Vec::with_capacity(2 + reason.len());
        p.extend_from_slice(&u16::from(code).to_be_bytes());
        p.extend_from_slice(reason.as_bytes());
        Frame::control(CLOSE, &p, Kind::Close)
    }

    fn control(opcode: u8, payload: &[u8], kind: Kind) -> Frame {
        Frame {
            wire: encode(opcode, payload),
            payload: 0,
            list: false,
            kind,
        }
    }

    /// Replaces a `ListOnly` frame by its `superseded` diff; returns the payload bytes saved.
    pub(super) fn supersede(&mut self) -> Option<usize> {
        let Kind::ListOnly { wire, payload } = &self.kind else {
            return None;
        };
        let (wire, payload) = (wire.clone(), *payload);
        let saved = self.payload.saturating_sub(payload);
        self.wire = wire;
        self.payload = payload;
        self.list = false;
        self.kind = Kind::Superseded;
        Some(saved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_the_rfc_6455_header_for_each_length() {
        for (len, header) in [
            (0usize, 2usize),
            (125, 2),
            (126, 4),
            (65_535, 4),
            (65_536, 10),
        ] {
            let msg = Utf8Bytes::from("x".repeat(len));
            let f = Frame::text(&msg);
            assert_eq!(f.wire.len(), len + header, "len {len}");
            assert_eq!(f.wire[0], 0x81, "FIN + text, len {len}");
            assert_eq!(f.wire[1] & 0x80, 0, "server frames are not masked");
            assert_eq!(&f.wire[header..], msg.as_bytes());
            assert_eq!(f.payload, len);
        }
        let close = Frame::close(CloseCode::Away, "going away");
        assert_eq!(&close.wire[..4], &[0x88, 12, 0x03, 0xe9]);
        assert_eq!(&Frame::ping().wire[..], &[0x89, 0]);
        assert_eq!(&Frame::pong(b"ab").wire[..], &[0x8a, 2, b'a', b'b']);
    }

    #[test]
    fn a_list_only_diff_becomes_its_superseded_stub() {
        let stub = Utf8Bytes::from(r#"{"type":"diff","seq":7,"superseded":true,"data":{}}"#);
        let list = Utf8Bytes::from(format!(
            r#"{{"seq":7,"data":{{"oncourse":[{}]}}}}"#,
            "1,".repeat(99) + "1"
        ));
        let mut f = Frame::diff(&list, true, Some(&stub));
        let saved = f.supersede().expect("list-only");
        assert_eq!(f.payload, stub.len());
        assert_eq!(saved, list.len() - stub.len());
        assert_eq!(&f.wire[2..], stub.as_bytes());
        assert!(!f.list);
        assert_eq!(f.supersede(), None, "a stub is never superseded again");
        let mut rows = Frame::diff(&list, true, None);
        assert_eq!(
            rows.supersede(),
            None,
            "a diff with more than the list stays"
        );
    }
}
