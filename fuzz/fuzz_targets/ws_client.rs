//! Fuzz a client-role `ws::Conn` on arbitrary bytes from a server.
//!
//! The same checks as `ws_server` (all in `ws_common.rs`), for the other role: the whole input
//! is what the server sent, so every seed is a plain stream of unmasked server frames. The
//! client masks what it writes with keys from a deterministic generator, so every run of an
//! input writes the same bytes, and a server-role `Conn` decodes them (the round trip, and the
//! Close after an error).
//!
//! - **Totality and progress**: `consumed <= len` on every call, at most `2 * len + 4` calls,
//!   and `NeedData` only when the unconsumed bytes hold no whole frame.
//! - **Split invariance**: whole, split into pieces sized by the first bytes, and one byte at
//!   a time give the same events and the same end, under default limits, tight ones, and with
//!   the client sending Close after a few events (a count taken from the last byte).
//! - **Errors**: sticky; answered by one Close with the error's code, then `is_closed()`.
//! - **Limits and validity**: valid UTF-8 text, messages and `buffered()` within
//!   `max_message`, control payloads within 125 bytes, sendable close codes.
//! - **Round trip**: echoed messages and `poll_transmit` output, unmasked by a server-role
//!   `Conn`, give back exactly the frames expected.
#![no_main]

mod ws_common;

use berth::ws::Role;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ws_common::check(Role::Client, data));
