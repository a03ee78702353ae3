//! Signing in with the phone against the real server: the agent's requests, the phone's device
//! channel, number matching, sessions and tickets, limits, races and shutdown. Every refusal is
//! checked for its HTTP status and machine code, its failure event in the audit log, and that no
//! session was created; every test ends with the audit chain verifying.
//!
//! The server runs in-process over TLS on loopback with a clock the tests move (see `common`);
//! phones are the real authenticator library in temporary directories, and the "agent" is a
//! plain HTTPS client making the calls a workstation's agent makes.

#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod approvals;
mod audited_refusals;
mod card;
mod challenge_limits;
mod collect_recheck;
mod concurrency;
mod deep_xml;
mod device_channel;
mod device_routes;
mod failure_races;
mod happy_path;
mod limits;
mod long_poll_shutdown;
mod metrics;
mod requests;
mod session_end;
mod sessions;
mod shutdown;
mod signing;
mod workstations;
