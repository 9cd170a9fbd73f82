//! The frames a client sends, parsed here rather than by tungstenite. tungstenite's
//! `WebSocket` owns both directions of the socket: it answers pings and closes by queueing
//! frames into its own write buffer, which it flushes between our writes. The hub now writes
//! prepared frames to the socket itself (`hub::frame`, `hub::queue`), so a second writer would
//! interleave with ours. Clients send us nothing but pongs, an occasional ping or close, and
//! messages we discard, so this reader is small and bounded: it keeps at most one frame
//! header (14 bytes) and one control payload (125 bytes), never a data payload, and refuses
//! what RFC 6455 forbids a client (unmasked frames, reserved bits or opcodes, fragmented or
//! oversized control frames) and any message over `max_message` bytes, counted over its
//! fragments.

/// What a client's frames mean for the connection.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Event {
    /// A ping with its payload (answered with a pong carrying the same bytes).
    Ping(Vec<u8>),
    Pong,
    /// A close, with its status code if it gave one.
    Close(Option<u16>),
}

/// Why the connection must end without a reply.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ReadError {
    /// A message (or a frame) longer than the limit.
    TooLarge,
    /// A frame a client must not send.
    Protocol,
}

/// The frame being read.
#[derive(Debug, Clone, Copy)]
struct Current {
    opcode: u8,
    mask: [u8; 4],
    /// Payload bytes still to come.
    left: u64,
    /// Payload bytes read so far (for unmasking).
    pos: usize,
}

pub(super) struct ClientReader {
    max_message: usize,
    head: [u8; 14],
    head_len: usize,
    current: Option<Current>,
    /// Length so far of a fragmented data message (`None`: no message open).
    message: Option<usize>,
    control: [u8; 125],
    control_len: usize,
}

/// Header length once its first two bytes are known.
fn header_len(b1: u8) -> usize {
    let ext = match b1 & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + ext + if b1 & 0x80 != 0 { 4 } else { 0 }
}

impl ClientReader {
    pub(super) fn new(max_message: usize) -> ClientReader {
        ClientReader {
            max_message,
            head: [0; 14],
            head_len: 0,
            current: None,
            message: None,
            control: [0; 125],
            control_len: 0,
        }
    }

    /// Consumes `data`, reporting each control frame to `on`; the caller stops at the first
    /// error (the reader's state is then meaningless).
    pub(super) fn feed(
        &mut self,
        mut data: &[u8],
        on: &mut impl FnMut(Event),
    ) -> Result<(), ReadError> {
        while !data.is_empty() {
            match self.current {
                None => {
                    let need = if self.head_len < 2 {
                        2
                    } else {
                        header_len(self.head[1])
                    };
                    let take = (need - self.head_len).min(data.len());
                    self.head[self.head_len..self.head_len + take].copy_from_slice(&data[..take]);
                    self.head_len += take;
                    data = &data[take..];
                    if self.head_len == 2 && header_len(self.head[1]) > 2 {
                        continue;
                    }
                    if self.head_len == need {
                        self.start_frame(on)?;
                    }
                }
                Some(mut cur) => {
                    let take = usize::try_from(cur.left)
                        .unwrap_or(usize::MAX)
                        .min(data.len());
                    if cur.opcode >= 0x8 {
                        for (i, b) in data[..take].iter().enumerate() {
                            self.control[cur.pos + i] = b ^ cur.mask[(cur.pos + i) % 4];
                        }
                        self.control_len = cur.pos + take;
                    }
                    cur.pos += take;
                    cur.left -= take as u64;
                    data = &data[take..];
                    self.current = Some(cur);
                    if cur.left == 0 {
                        self.end_frame(on);
                    }
                }
            }
        }
        Ok(())
    }

    /// The header is complete: checks it and starts the frame.
    fn start_frame(&mut self, on: &mut impl FnMut(Event)) -> Result<(), ReadError> {
        let h = &self.head[..self.head_len];
        let (b0, b1) = (h[0], h[1]);
        let (fin, rsv, opcode, masked) = (b0 & 0x80 != 0, b0 & 0x70, b0 & 0x0f, b1 & 0x80 != 0);
        let (len, mask_at) = match b1 & 0x7f {
            126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), 4),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&h[2..10]);
                (u64::from_be_bytes(b), 10)
            }
            n => (u64::from(n), 2),
        };
        if rsv != 0 || !masked {
            return Err(ReadError::Protocol);
        }
        let mut mask = [0u8; 4];
        mask.copy_from_slice(&h[mask_at..mask_at + 4]);
        match opcode {
            0x8..=0xA => {
                if !fin || len > 125 {
                    return Err(ReadError::Protocol);
                }
            }
            0x0..=0x2 => {
                let so_far = match (opcode, self.message) {
                    (0x0, Some(n)) => n,
                    (0x1 | 0x2, None) => 0,
                    _ => return Err(ReadError::Protocol),
                };
                let total = u64::try_from(so_far)
                    .unwrap_or(u64::MAX)
                    .saturating_add(len);
                if total > self.max_message as u64 {
                    return Err(ReadError::TooLarge);
                }
                self.message = (!fin).then_some(total as usize);
            }
            _ => return Err(ReadError::Protocol),
        }
        self.head_len = 0;
        self.control_len = 0;
        self.current = Some(Current {
            opcode,
            mask,
            left: len,
            pos: 0,
        });
        if len == 0 {
            self.end_frame(on);
        }
        Ok(())
    }

    fn end_frame(&mut self, on: &mut impl FnMut(Event)) {
        let Some(cur) = self.current.take() else {
            return;
        };
        let payload = &self.control[..self.control_len];
        match cur.opcode {
            0x8 => on(Event::Close(
                (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])),
            )),
            0x9 => on(Event::Ping(payload.to_vec())),
            0xA => on(Event::Pong),
            // Data: discarded; `message` already tracks a fragmented one.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [7u8, 1, 200, 3];
        let mut f = vec![b0];
        match payload.len() {
            n @ 0..=125 => f.push(0x80 | n as u8),
            n @ 126..=0xffff => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    fn read(r: &mut ClientReader, bytes: &[u8]) -> (Vec<Event>, Result<(), ReadError>) {
        let mut events = Vec::new();
        let res = r.feed(bytes, &mut |e| events.push(e));
        (events, res)
    }

    #[test]
    fn control_frames_are_reported_byte_by_byte_too() {
        let mut all = Vec::new();
        all.extend(frame(0x81, &[b'x'; 300]));
        all.extend(frame(0x89, b"ping!"));
        all.extend(frame(0x8A, b""));
        all.extend(frame(0x01, b"frag"));
        all.extend(frame(0x89, b"mid"));
        all.extend(frame(0x80, b"end"));
        all.extend(frame(0x88, &[0x03, 0xe8, b'b', b'y', b'e']));
        let want = vec![
            Event::Ping(b"ping!".to_vec()),
            Event::Pong,
            Event::Ping(b"mid".to_vec()),
            Event::Close(Some(1000)),
        ];
        let mut r = ClientReader::new(4096);
        assert_eq!(read(&mut r, &all), (want, Ok(())));
        let mut r = ClientReader::new(4096);
        let mut events = Vec::new();
        for b in &all {
            r.feed(std::slice::from_ref(b), &mut |e| events.push(e))
                .expect("valid");
        }
        assert_eq!(events.len(), 4);
        assert_eq!(events[0], Event::Ping(b"ping!".to_vec()));
    }

    #[test]
    fn the_message_limit_counts_every_fragment() {
        let mut r = ClientReader::new(4096);
        assert_eq!(read(&mut r, &frame(0x81, &[0; 4096])).1, Ok(()));
        assert_eq!(
            read(&mut r, &frame(0x81, &[0; 4097])).1,
            Err(ReadError::TooLarge)
        );
        let mut r = ClientReader::new(4096);
        let mut two = frame(0x01, &[0; 4000]);
        two.extend(frame(0x80, &[0; 97]));
        assert_eq!(read(&mut r, &two).1, Err(ReadError::TooLarge));
        // A 64-bit length is refused from the header alone, before any payload.
        let mut r = ClientReader::new(4096);
        let huge = [0x82, 0x80 | 127, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4];
        assert_eq!(read(&mut r, &huge).1, Err(ReadError::TooLarge));
    }

    #[test]
    fn what_a_client_must_not_send_is_refused() {
        let unmasked = [0x81, 0x01, b'x'];
        let long_ping = frame(0x89, &[0; 126]);
        let fragmented_ping = frame(0x09, b"x");
        let reserved_bit = frame(0xC1, b"x");
        let reserved_opcode = frame(0x83, b"x");
        let stray_continuation = frame(0x80, b"x");
        let mut nested = frame(0x01, b"x");
        nested.extend(frame(0x81, b"y"));
        for bad in [
            unmasked.to_vec(),
            long_ping,
            fragmented_ping,
            reserved_bit,
            reserved_opcode,
            stray_continuation,
            nested,
        ] {
            let mut r = ClientReader::new(4096);
            assert_eq!(read(&mut r, &bad).1, Err(ReadError::Protocol), "{bad:?}");
        }
    }
}
