//! The WhatsApp webhook: the typed model of what Meta sends ([`model`]) and the splitter that
//! turns a POST body into queue events ([`split()`](split::split)).

pub mod model;
pub mod split;

pub use split::{split, SplitError};
