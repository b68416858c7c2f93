//! QEMU's filter socket framing: `LEN (u32 BE) [VNET_LEN (u32 BE)] DATA[LEN]`.
//!
//! filter-mirror, filter-redirector and colo-compare all speak it; nothing in the stream says
//! whether the VNET_LEN field is present, so both ends are configured alike. The decoder is an
//! incremental state machine fed arbitrary chunks, copied in or read straight into its buffer
//! ([`Decoder::read_buffer`]). Unlike QEMU's, it checks the announced length before buffering
//! (D-IN-2), reports zero-length frames instead of passing them on (D-IN-1), and is meant to
//! be created afresh for every connection (D-IN-2, T48).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

/// QEMU's `NET_BUFSIZE`: the largest LEN (vnet header included) a peer may send.
pub const NET_BUFSIZE: u32 = 4096 + 65536;

/// Frames at least this long (header included) are assembled in an allocation of exactly their
/// size. A held frame keeps its whole allocation alive, so a large frame sharing one with the
/// start of the next frame, or sitting in a buffer grown by doubling, would hold up to twice
/// the bytes the memory budget counts (D-LOSS-3). Smaller frames share the read chunk: copying
/// each would cost more than the memory it saves.
pub(crate) const OWN_ALLOCATION: usize = 16 * 1024;

/// One frame as it travels on a filter socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The VNET_LEN that came with the frame (0 when vnet support is off).
    pub vnet_len: u32,
    /// The LEN bytes of DATA: `vnet_len` header bytes, then the Ethernet frame.
    pub data: Bytes,
}

impl Frame {
    /// A frame without vnet header.
    pub fn new(data: impl Into<Bytes>) -> Self {
        Frame {
            vnet_len: 0,
            data: data.into(),
        }
    }

    /// A frame whose DATA starts with a vnet header of `vnet_len` bytes.
    pub fn with_vnet(vnet_len: u32, data: impl Into<Bytes>) -> Self {
        Frame {
            vnet_len,
            data: data.into(),
        }
    }

    /// LEN: the size of DATA, vnet header included.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True for a frame with no DATA at all.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The Ethernet frame after the vnet header; empty if VNET_LEN exceeds the data.
    pub fn ethernet(&self) -> &[u8] {
        usize::try_from(self.vnet_len)
            .ok()
            .and_then(|v| self.data.get(v..))
            .unwrap_or(&[])
    }

    /// The number of bytes [`encode`] writes for this frame.
    pub fn encoded_len(&self, vnet: bool) -> usize {
        self.data.len() + if vnet { 8 } else { 4 }
    }
}

/// Appends `frame` to `out` in the wire format; `vnet` adds the VNET_LEN field.
///
/// Frames longer than `u32::MAX` cannot be produced by the decoder or the parser, so the
/// length is saturated rather than checked.
pub fn encode(frame: &Frame, vnet: bool, out: &mut impl BufMut) {
    encode_parts(&frame.data, vnet.then_some(frame.vnet_len), out);
}

/// Appends one frame made of `data` with an optional VNET_LEN field to `out`.
pub fn encode_parts(data: &[u8], vnet_len: Option<u32>, out: &mut impl BufMut) {
    out.put_u32(u32::try_from(data.len()).unwrap_or(u32::MAX));
    if let Some(v) = vnet_len {
        out.put_u32(v);
    }
    out.put_slice(data);
}

/// Why a frame stream cannot be decoded further.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The peer announced a frame longer than the limit; the stream cannot be trusted past it.
    #[error("oversized frame: length {len} exceeds the limit of {max} bytes")]
    Oversized {
        /// The announced LEN.
        len: u32,
        /// The configured limit (`NET_BUFSIZE` unless changed).
        max: u32,
    },
    /// The stream ended in the middle of a frame.
    #[error("stream ended mid-frame: have {have} of {need} bytes")]
    Truncated {
        /// Bytes of the unfinished frame (header included) that arrived.
        have: usize,
        /// Bytes the frame needed (header included), as far as known.
        need: usize,
    },
}

/// What the decoder yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A complete frame.
    Frame(Frame),
    /// A frame with LEN = 0, skipped. Reported so that the caller counts and logs it.
    Empty,
}

/// Incremental decoder for one connection's byte stream.
#[derive(Debug)]
pub struct Decoder {
    vnet: bool,
    max_len: u32,
    buf: BytesMut,
    /// Complete frames (headers included) taken out of `buf` in one piece and not returned
    /// yet: cutting frames from a frozen chunk is much cheaper than from the growing buffer.
    ready: Bytes,
    failed: Option<FrameError>,
}

impl Decoder {
    /// A decoder with QEMU's limit of [`NET_BUFSIZE`] bytes per frame.
    pub fn new(vnet: bool) -> Self {
        Self::with_limit(vnet, NET_BUFSIZE)
    }

    /// A decoder that refuses frames longer than `max_len`.
    pub fn with_limit(vnet: bool, max_len: u32) -> Self {
        Decoder {
            vnet,
            max_len,
            buf: BytesMut::new(),
            ready: Bytes::new(),
            failed: None,
        }
    }

    /// Whether this decoder expects the VNET_LEN field.
    pub fn vnet(&self) -> bool {
        self.vnet
    }

    fn header_len(&self) -> usize {
        if self.vnet { 8 } else { 4 }
    }

    /// Appends bytes read from the peer: copies them into [`Decoder::read_buffer`]s.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            let mut buf = self.read_buffer(chunk.len());
            // At least one byte: a buffer has room for `want` bytes or for the rest of a frame.
            let n = (buf.capacity() - buf.len()).clamp(1, chunk.len());
            buf.extend_from_slice(&chunk[..n]);
            self.fill(buf);
            chunk = &chunk[n..];
        }
    }

    /// A buffer to read the peer's next bytes into, then hand back with [`Decoder::fill`]: it
    /// holds the start of an unfinished frame, if any, and has room for at least `want` more
    /// bytes. For a frame of 16 KiB or more whose length is known, the room is exactly the
    /// rest of that frame, so that it ends up in an allocation of its own size.
    ///
    /// Reading into the spare capacity of this buffer saves copying every byte once more
    /// from a read buffer into the decoder ([`Decoder::feed`]).
    pub fn read_buffer(&mut self, want: usize) -> Vec<u8> {
        if self.ready.is_empty() {
            // Complete frames stay where they are; only what follows them is handed out. A
            // framing error is kept for `next_frame` to report.
            let _ = self.take_complete();
        }
        let v = Vec::from(std::mem::take(&mut self.buf).freeze());
        let room = match self.large_frame_len(&v) {
            Some(need) if v.capacity() == need => return v,
            Some(need) => need,
            None if v.capacity() - v.len() >= want => return v,
            // At least doubling, so that many small pieces of one frame cost linear time.
            None => (v.len() + want).max(2 * v.len()),
        };
        // A fresh buffer with the unfinished frame copied: growing `v` would copy its whole
        // old allocation (the allocator does not know how much of it is in use).
        let mut fresh = Vec::with_capacity(room);
        fresh.extend_from_slice(&v);
        fresh
    }

    /// Takes back a buffer from [`Decoder::read_buffer`], with the bytes read appended. The
    /// frames in it come out of [`Decoder::next_frame`] without being copied.
    pub fn fill(&mut self, mut chunk: Vec<u8>) {
        // Frames keep the buffer they came in allocated while they are held: a short read
        // would pin many times the bytes the memory budget counts. Shrinking in place is cheap.
        if chunk.capacity() - chunk.len() > chunk.len() && self.large_frame_len(&chunk).is_none() {
            chunk.shrink_to_fit();
        }
        self.buf = BytesMut::from(Bytes::from(chunk));
    }

    /// The length (header included) of the frame that `bytes` begin, when it is known, is
    /// not finished, and calls for an allocation of its own.
    fn large_frame_len(&self, bytes: &[u8]) -> Option<usize> {
        if !self.ready.is_empty() || self.failed.is_some() {
            return None;
        }
        let h = bytes.get(..4)?;
        let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        if len > self.max_len || len == 0 {
            return None;
        }
        let need = self.header_len() + len as usize;
        (need >= OWN_ALLOCATION && bytes.len() < need).then_some(need)
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.ready.len() + self.buf.len()
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    ///
    /// After an error every later call returns the same error: the stream has lost its framing
    /// and the connection should be closed.
    pub fn next_frame(&mut self) -> Result<Option<Decoded>, FrameError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if self.ready.is_empty() {
            // Let go of the allocation the last frames came from: only they keep it alive.
            self.ready = Bytes::new();
            self.take_complete()?;
        }
        if self.ready.len() < 4 {
            return Ok(None);
        }
        // `take_complete` checked every frame in `ready`: its header and DATA are all there.
        let len = self.ready.get_u32() as usize;
        let vnet_len = if self.vnet { self.ready.get_u32() } else { 0 };
        if len == 0 {
            return Ok(Some(Decoded::Empty));
        }
        let data = self.ready.split_to(len.min(self.ready.len()));
        Ok(Some(Decoded::Frame(Frame { vnet_len, data })))
    }

    /// Moves every complete frame at the front of `buf` into `ready`; fails at an oversized
    /// length, once the frames before it have been taken.
    fn take_complete(&mut self) -> Result<(), FrameError> {
        let hlen = self.header_len();
        let mut at = 0;
        while let Some(h) = self.buf.get(at..at + 4) {
            let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
            if len > self.max_len {
                if at > 0 {
                    break;
                }
                let err = FrameError::Oversized {
                    len,
                    max: self.max_len,
                };
                self.failed = Some(err.clone());
                self.buf = BytesMut::new();
                return Err(err);
            }
            // `len <= max_len <= u32::MAX` always fits in usize on the platforms QEMU runs on.
            // Room for an unfinished frame is made by `read_buffer`.
            let need = hlen + len as usize;
            if self.buf.len() - at < need {
                break;
            }
            at += need;
        }
        if at > 0 {
            self.ready = self.buf.split_to(at).freeze();
        }
        Ok(())
    }

    /// Checks the stream at end of file: an error if it stopped mid-frame.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.failed.is_some() || self.buffered() == 0 {
            return Ok(());
        }
        let have = self.buffered();
        let first = if self.ready.is_empty() {
            &self.buf[..]
        } else {
            &self.ready[..]
        };
        let need = match first {
            [a, b, c, d, ..] => self.header_len() + u32::from_be_bytes([*a, *b, *c, *d]) as usize,
            _ => self.header_len(),
        };
        Err(FrameError::Truncated { have, need })
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    fn wire(frames: &[Frame], vnet: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for f in frames {
            encode(f, vnet, &mut out);
        }
        out
    }

    fn drain(dec: &mut Decoder) -> Result<Vec<Decoded>, FrameError> {
        let mut got = Vec::new();
        while let Some(d) = dec.next_frame()? {
            got.push(d);
        }
        Ok(got)
    }

    fn sample(vnet: bool) -> Vec<Frame> {
        let v = if vnet { 12 } else { 0 };
        vec![
            Frame::with_vnet(v, vec![0xaa; 60 + v as usize]),
            Frame::with_vnet(v, vec![0x55; 1514 + v as usize]),
            Frame::with_vnet(
                v,
                (0..=255u8)
                    .cycle()
                    .take(200 + v as usize)
                    .collect::<Vec<_>>(),
            ),
        ]
    }

    #[test]
    fn encode_layout_matches_qemu() {
        let mut out = Vec::new();
        encode(&Frame::with_vnet(12, vec![7u8; 72]), true, &mut out);
        assert_eq!(&out[..8], &[0, 0, 0, 72, 0, 0, 0, 12]);
        assert_eq!(out.len(), 80);
        let mut out = Vec::new();
        encode(&Frame::new(vec![7u8; 60]), false, &mut out);
        assert_eq!(&out[..4], &[0, 0, 0, 60]);
        assert_eq!(out.len(), 64);
    }

    #[test]
    fn many_frames_in_one_chunk() {
        for vnet in [false, true] {
            let frames = sample(vnet);
            let mut dec = Decoder::new(vnet);
            dec.feed(&wire(&frames, vnet));
            let got = drain(&mut dec).expect("valid stream");
            let want: Vec<_> = frames.into_iter().map(Decoded::Frame).collect();
            assert_eq!(got, want);
            assert_eq!(dec.buffered(), 0);
            assert_eq!(dec.finish(), Ok(()));
        }
    }

    #[test]
    fn byte_at_a_time() {
        for vnet in [false, true] {
            let frames = sample(vnet);
            let bytes = wire(&frames, vnet);
            let mut dec = Decoder::new(vnet);
            let mut got = Vec::new();
            for b in &bytes {
                dec.feed(std::slice::from_ref(b));
                got.extend(drain(&mut dec).expect("valid stream"));
            }
            assert_eq!(
                got,
                frames.into_iter().map(Decoded::Frame).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn zero_length_is_reported_and_skipped() {
        for vnet in [false, true] {
            let mut bytes = vec![0, 0, 0, 0];
            if vnet {
                bytes.extend([0, 0, 0, 0]);
            }
            let good = Frame::new(vec![1u8; 20]);
            encode(&good, vnet, &mut bytes);
            let mut dec = Decoder::new(vnet);
            dec.feed(&bytes);
            assert_eq!(
                drain(&mut dec),
                Ok(vec![Decoded::Empty, Decoded::Frame(good)])
            );
        }
    }

    #[test]
    fn oversized_is_an_error_naming_length_and_limit() {
        let mut dec = Decoder::new(false);
        dec.feed(&70000u32.to_be_bytes());
        let err = dec.next_frame().expect_err("oversized");
        assert_eq!(
            err,
            FrameError::Oversized {
                len: 70000,
                max: NET_BUFSIZE
            }
        );
        assert_eq!(
            err.to_string(),
            "oversized frame: length 70000 exceeds the limit of 69632 bytes"
        );
        // The stream stays failed: later valid-looking bytes are not trusted.
        dec.feed(&wire(&sample(false), false));
        assert!(dec.next_frame().is_err());
    }

    #[test]
    fn limit_itself_is_accepted() {
        let frame = Frame::new(vec![0u8; NET_BUFSIZE as usize]);
        let mut dec = Decoder::new(false);
        dec.feed(&wire(std::slice::from_ref(&frame), false));
        assert_eq!(drain(&mut dec), Ok(vec![Decoded::Frame(frame)]));
    }

    #[test]
    fn truncated_at_every_byte() {
        for vnet in [false, true] {
            let frames = sample(vnet);
            let bytes = wire(&frames[..1], vnet);
            for cut in 1..bytes.len() {
                let mut dec = Decoder::new(vnet);
                dec.feed(&bytes[..cut]);
                assert_eq!(drain(&mut dec), Ok(vec![]), "cut at {cut}");
                match dec.finish() {
                    Err(FrameError::Truncated { have, need }) => {
                        assert_eq!(have, cut);
                        if cut >= 4 {
                            assert_eq!(need, bytes.len());
                        }
                    }
                    other => panic!("cut at {cut}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn fresh_decoder_per_connection_recovers_from_half_a_header() {
        // T48: half a length field from the old peer must not poison the new connection.
        let mut old = Decoder::new(false);
        old.feed(&[0, 0]);
        assert!(old.finish().is_err());
        let mut new = Decoder::new(false);
        let frames = sample(false);
        new.feed(&wire(&frames, false));
        assert_eq!(drain(&mut new).map(|v| v.len()), Ok(3));
    }

    #[test]
    fn ethernet_view_skips_vnet_header() {
        let f = Frame::with_vnet(2, vec![9, 9, 1, 2, 3]);
        assert_eq!(f.ethernet(), &[1, 2, 3]);
        let bogus = Frame::with_vnet(24, vec![1, 2, 3]);
        assert!(bogus.ethernet().is_empty());
    }

    #[test]
    fn a_large_frame_shares_its_allocation_with_no_other_frame() {
        large_frames_get_their_own_allocation(Input::Feed);
        large_frames_get_their_own_allocation(Input::Read);
    }

    fn large_frames_get_their_own_allocation(input: Input) {
        // Read-sized chunks that end mid-frame, as a socket delivers maximum-size frames.
        let frames: Vec<Frame> = (0..4u8)
            .map(|i| Frame::new(vec![i; NET_BUFSIZE as usize]))
            .collect();
        let bytes = wire(&frames, false);
        let mut dec = Decoder::new(false);
        let mut got = Vec::new();
        for chunk in bytes.chunks(64 * 1024) {
            give(&mut dec, chunk, input);
            got.extend(drain(&mut dec).expect("valid stream"));
        }
        assert_eq!(got.len(), frames.len());
        // The read path lets go of the last buffer at the next read.
        drop(dec);
        for (i, d) in got.into_iter().enumerate() {
            let Decoded::Frame(f) = d else {
                panic!("frame {i} is not a frame");
            };
            assert_eq!(f, frames[i]);
            // Unique once the decoder is gone, and no larger than the frame and its header:
            // what the budget counts is what stays allocated.
            let Ok(own) = f.data.try_into_mut() else {
                panic!("frame {i} shares its allocation");
            };
            assert_eq!(own.capacity(), own.len(), "frame {i}'s allocation");
        }
    }

    /// How bytes reach the decoder in a test.
    #[derive(Clone, Copy, Debug)]
    enum Input {
        /// [`Decoder::feed`]: copied in.
        Feed,
        /// [`Decoder::read_buffer`] and [`Decoder::fill`], as a socket read of at most the
        /// chunk's length into the buffer's spare room.
        Read,
    }

    /// Gives `chunk` to `dec` the way `input` says.
    fn give(dec: &mut Decoder, chunk: &[u8], input: Input) {
        match input {
            Input::Feed => dec.feed(chunk),
            Input::Read => {
                let mut rest = chunk;
                while !rest.is_empty() {
                    let mut buf = dec.read_buffer(rest.len());
                    let n = (buf.capacity() - buf.len()).min(rest.len());
                    assert!(n > 0, "read_buffer left no room");
                    buf.extend_from_slice(&rest[..n]);
                    dec.fill(buf);
                    rest = &rest[n..];
                }
            }
        }
    }

    #[test]
    fn read_buffer_hands_frames_out_without_copying_them() {
        let frames = sample(false);
        let bytes = wire(&frames, false);
        let mut dec = Decoder::new(false);
        let mut buf = dec.read_buffer(64 * 1024);
        buf.extend_from_slice(&bytes);
        let start = buf.as_ptr() as usize;
        dec.fill(buf);
        let got = drain(&mut dec).expect("valid stream");
        assert_eq!(got.len(), frames.len());
        for d in got {
            let Decoded::Frame(f) = d else {
                panic!("not a frame");
            };
            let at = f.data.as_ptr() as usize;
            assert!(
                (start..start + bytes.len()).contains(&at),
                "frame data was copied out of the read buffer"
            );
        }
    }

    #[test]
    fn a_short_read_keeps_only_what_it_read_allocated() {
        let frame = Frame::new(vec![7; 1400]);
        let mut dec = Decoder::new(false);
        let mut buf = dec.read_buffer(64 * 1024);
        encode(&frame, false, &mut buf);
        dec.fill(buf);
        let got = drain(&mut dec).expect("valid stream");
        drop(dec);
        let Ok([Decoded::Frame(f)]) = <[Decoded; 1]>::try_from(got) else {
            panic!("expected one frame");
        };
        let Ok(own) = f.data.try_into_mut() else {
            panic!("the frame shares its allocation");
        };
        assert_eq!(own.capacity(), 1400);
    }

    #[test]
    fn read_buffer_keeps_an_unfinished_frame() {
        let frames = sample(true);
        let bytes = wire(&frames, true);
        let (a, b) = bytes.split_at(7);
        let mut dec = Decoder::new(true);
        give(&mut dec, a, Input::Read);
        assert_eq!(dec.next_frame(), Ok(None));
        assert_eq!(dec.buffered(), 7);
        let buf = dec.read_buffer(100);
        assert_eq!(&buf[..], a);
        assert!(buf.capacity() >= a.len() + 100);
        dec.fill(buf);
        give(&mut dec, b, Input::Read);
        let got = drain(&mut dec).expect("valid stream");
        assert_eq!(
            got,
            frames.into_iter().map(Decoded::Frame).collect::<Vec<_>>()
        );
    }

    /// Frames of lengths `lens`, given in chunks cut at `cuts` (repeated), come out whole.
    fn round_trip(lens: &[usize], cuts: &[usize], vnet: bool) -> Result<(), TestCaseError> {
        round_trip_by(lens, cuts, vnet, Input::Feed)?;
        round_trip_by(lens, cuts, vnet, Input::Read)
    }

    fn round_trip_by(
        lens: &[usize],
        cuts: &[usize],
        vnet: bool,
        input: Input,
    ) -> Result<(), TestCaseError> {
        let frames: Vec<Frame> = lens
            .iter()
            .enumerate()
            .map(|(i, &l)| Frame::with_vnet(u32::from(vnet) * 10, vec![i as u8; l]))
            .collect();
        let bytes = wire(&frames, vnet);
        let mut dec = Decoder::new(vnet);
        let mut got = Vec::new();
        let mut at = 0;
        for c in cuts.iter().cycle() {
            if at >= bytes.len() {
                break;
            }
            let end = (at + c).min(bytes.len());
            give(&mut dec, &bytes[at..end], input);
            at = end;
            got.extend(drain(&mut dec).expect("valid"));
        }
        prop_assert_eq!(
            got,
            frames.into_iter().map(Decoded::Frame).collect::<Vec<_>>()
        );
        prop_assert_eq!(dec.finish(), Ok(()));
        Ok(())
    }

    proptest! {
        #[test]
        fn arbitrary_chunking_round_trips(
            lens in proptest::collection::vec(1usize..3000, 0..12),
            cuts in proptest::collection::vec(1usize..700, 1..40),
            vnet in any::<bool>(),
        ) {
            round_trip(&lens, &cuts, vnet)?;
        }

        #[test]
        fn large_frames_in_arbitrary_chunks_round_trip(
            lens in proptest::collection::vec(1usize..NET_BUFSIZE as usize, 1..5),
            cuts in proptest::collection::vec(1usize..80_000, 1..10),
            vnet in any::<bool>(),
        ) {
            round_trip(&lens, &cuts, vnet)?;
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4096), vnet in any::<bool>()) {
            let mut dec = Decoder::with_limit(vnet, 2048);
            dec.feed(&bytes);
            for _ in 0..bytes.len() + 1 {
                match dec.next_frame() {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            let _ = dec.finish();
        }
    }
}
