//! Fuzz target: the frame decoder fed an arbitrary byte stream in arbitrary chunks.
//!
//! The stream is what a peer writes; the chunking is what the socket hands the reader. The
//! decoder must give exactly what a straightforward reading of the whole stream gives, however
//! it is cut: the same frames, the same skipped empty frames, the same error at the same place,
//! and the same verdict at end of stream. It must never panic, and after an error it must stay
//! failed (the reader closes the connection).

use colo_core::frame::encode_parts;
use colo_core::{Decoded, Decoder, Frame, FrameError, NET_BUFSIZE};

use super::input::Input;

/// What a plain reading of the whole stream finds.
#[derive(Debug, PartialEq, Eq)]
struct Reading {
    items: Vec<Decoded>,
    error: Option<FrameError>,
    /// Bytes after the last complete frame when the stream stops mid-frame (no error).
    leftover: usize,
    /// The size the unfinished frame needs, header included, as far as known.
    need: usize,
}

/// The reference: one pass over the whole stream, no buffering logic at all.
fn read_whole(stream: &[u8], vnet: bool, limit: u32) -> Reading {
    let header = if vnet { 8 } else { 4 };
    let mut items = Vec::new();
    let mut at = 0;
    loop {
        let rest = &stream[at..];
        let Some(len) = rest.first_chunk::<4>().map(|b| u32::from_be_bytes(*b)) else {
            return Reading {
                items,
                error: None,
                leftover: rest.len(),
                need: header,
            };
        };
        if len > limit {
            return Reading {
                items,
                error: Some(FrameError::Oversized { len, max: limit }),
                leftover: 0,
                need: 0,
            };
        }
        let need = header + len as usize;
        if rest.len() < need {
            return Reading {
                items,
                error: None,
                leftover: rest.len(),
                need,
            };
        }
        let vnet_len = if vnet {
            u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]])
        } else {
            0
        };
        items.push(if len == 0 {
            Decoded::Empty
        } else {
            Decoded::Frame(Frame::with_vnet(vnet_len, rest[header..need].to_vec()))
        });
        at += need;
    }
}

/// Chunk sizes from the input: small ones mostly, now and then one far larger than a frame.
fn chunk_sizes(input: &mut Input<'_>) -> Vec<usize> {
    let n = 1 + input.below(16);
    input
        .bytes(n)
        .iter()
        .map(|&b| match b {
            0..=199 => 1 + usize::from(b),
            200..=249 => 1 + usize::from(b - 200) * 1500,
            _ => 70_000,
        })
        .collect()
}

/// The stream: the input's remaining bytes, or (when the input asks for it) frames encoded
/// from them, so that long valid streams are common and not left to chance.
fn stream(input: &mut Input<'_>, vnet: bool, synthetic: bool) -> Vec<u8> {
    if !synthetic {
        return input.rest().to_vec();
    }
    let mut out = Vec::new();
    while !input.is_empty() {
        let len = usize::from(input.u16() % 4096);
        let vnet_len = vnet.then(|| u32::from(input.u8()));
        let body: Vec<u8> = input.bytes(len).to_vec();
        encode_parts(&body, vnet_len, &mut out);
    }
    out
}

/// Runs the target on one input; panics when a property breaks.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let vnet = flags & 1 == 1;
    let synthetic = flags & 2 == 2;
    let limit = match (flags >> 2) & 3 {
        0 => NET_BUFSIZE,
        1 => 0,
        2 => u32::from(input.u8()),
        _ => u32::from(input.u16()),
    };
    let sizes = chunk_sizes(&mut input);
    let stream = stream(&mut input, vnet, synthetic);
    let want = read_whole(&stream, vnet, limit);

    let mut decoder = Decoder::with_limit(vnet, limit);
    let mut items = Vec::new();
    let mut error = None;
    let mut at = 0;
    for &size in sizes.iter().cycle() {
        if at >= stream.len() || error.is_some() {
            break;
        }
        let end = (at + size).min(stream.len());
        decoder.feed(&stream[at..end]);
        at = end;
        loop {
            match decoder.next_frame() {
                Ok(Some(d)) => items.push(d),
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
    }
    if let Some(e) = &error {
        assert_eq!(
            decoder.next_frame(),
            Err(e.clone()),
            "a failed decoder must stay failed"
        );
        assert_eq!(
            decoder.finish(),
            Ok(()),
            "a failed stream is not 'truncated'"
        );
    } else {
        assert_eq!(
            decoder.buffered(),
            want.leftover,
            "bytes kept after the last frame"
        );
        match decoder.finish() {
            Ok(()) => assert_eq!(want.leftover, 0, "a cut frame went unreported"),
            Err(FrameError::Truncated { have, need }) => {
                assert_eq!(
                    (have, need),
                    (want.leftover, want.need),
                    "truncation report"
                )
            }
            Err(other) => panic!("finish gave {other:?}"),
        }
    }
    let got = Reading {
        items,
        error,
        leftover: want.leftover,
        need: want.need,
    };
    assert_eq!(
        got, want,
        "chunked decoding differs from reading the whole stream"
    );
}
