//! Fuzz a server-role `ws::Conn` on arbitrary bytes from a client.
//!
//! The whole input is what the client sent; nothing is reserved for control, so every seed is
//! a plain stream of masked client frames (the piece sizes of the split run come from its first
//! bytes, the point at which the server sends its own Close from its last). The input is run
//! under the default limits, under tight ones (`max_frame_payload` 64, `max_message` 128,
//! `max_fragments` 4, so the limit checks are reachable with short inputs), and with the server
//! starting the close handshake after a few events. Each is fed whole, split into pieces, and
//! one byte at a time, the way a runtime does (unconsumed bytes are kept and new ones appended;
//! each run unmasks its own copy). Checked, by `ws_common.rs`:
//!
//! - **Totality and progress**: `consumed <= len` on every call, at most `2 * len + 4` calls,
//!   and `NeedData` only when the unconsumed bytes hold no whole frame.
//! - **Split invariance**: the three runs give exactly the same events (owned copies of Text,
//!   Binary, Ping, Pong, Close code and reason, Closed) and the same end: the same error, or
//!   the same bytes consumed and buffered, or Closed.
//! - **Errors**: once failed, the next call returns the same error; `poll_transmit` writes one
//!   Close frame with the error's close code (decoded by a client-role `Conn`), unless the
//!   server had sent Close already, and then `is_closed()` is true.
//! - **Limits and validity**: no Text is invalid UTF-8 (re-checked with `std::str::from_utf8`),
//!   no message is longer than `max_message`, `buffered()` never exceeds it, control payloads
//!   fit in 125 bytes and close codes are sendable.
//! - **Round trip**: every data message is echoed with `send_text`/`send_binary` (which fail
//!   with `Closing` once the server has sent Close), and everything written, echoes and
//!   `poll_transmit` output (automatic pongs for the latest ping, the echo of the client's
//!   Close, the Close after an error) alike, decodes with a client-role `Conn` to exactly the
//!   frames expected, with nothing after the Close.
#![no_main]

mod ws_common;

use berth::ws::Role;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ws_common::check(Role::Server, data));
