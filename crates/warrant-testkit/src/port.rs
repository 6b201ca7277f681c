use std::net::{Ipv4Addr, TcpListener};

use crate::FixtureError;

/// Asks the kernel for a free TCP port on 127.0.0.1: binds `127.0.0.1:0`, reads the port and
/// closes the listener again.
///
/// Another process can take the port between this call and the caller's own bind, so a caller
/// that starts an external server should retry with a new port when the bind fails.
pub fn try_free_port() -> Result<u16, FixtureError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| {
        FixtureError::new("could not bind a TCP listener on 127.0.0.1:0")
            .with_detail(e.to_string())
            .with_fix("the loopback interface must be up (ip link set lo up)")
    })?;
    let port = listener
        .local_addr()
        .map_err(|e| {
            FixtureError::new("could not read the address of a listener on 127.0.0.1:0")
                .with_detail(e.to_string())
        })?
        .port();
    Ok(port)
}

/// Like [`try_free_port`], for tests that have no use for the error: panics with its message.
///
/// # Panics
///
/// When no listener can be bound on 127.0.0.1 (the loopback interface is down), which no test
/// on this machine can survive anyway.
#[must_use]
#[allow(
    clippy::panic,
    reason = "test helper with a fixed `-> u16` signature; a broken loopback ends the test with the fix in the message"
)]
pub fn free_port() -> u16 {
    match try_free_port() {
        Ok(port) => port,
        Err(e) => panic!("{e}"),
    }
}
