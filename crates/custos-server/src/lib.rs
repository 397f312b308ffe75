//! Delivery service of Custos: accounts, MLS delivery, mailboxes.
#![forbid(unsafe_code)]
