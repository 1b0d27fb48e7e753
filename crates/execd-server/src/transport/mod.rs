//! Transports: turn a socket or stdio into inbound messages and drain the outbound queue.

pub mod stdio;
pub mod ws;
