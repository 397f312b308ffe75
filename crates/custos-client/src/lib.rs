//! Device library of Custos: MLS conversations, sender chains, franking.
#![forbid(unsafe_code)]
