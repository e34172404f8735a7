//! The provisioning engine of KeyProv Station and the service API every shell calls.
//!
//! `api` holds the request/response/event types; the engine that implements them is being
//! built (issue 5).

pub mod api;
