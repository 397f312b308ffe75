//! Custodian-to-custodian networking for the DKG: the signed, sealed
//! envelope, the inbox where received messages wait, and the HTTP
//! transport that drives the escrow crate's state machine.

pub mod envelope;
pub mod inbox;
pub mod transport;
