//! The commands' own code, where it is more than choosing a source and a sink.

pub mod eval;
pub mod load;
pub mod replay;
pub mod report;
pub mod tune;
