//! The vocabulary every stage shares, at the bottom of the house: event times
//! as integer milliseconds (RFC 3339 only at the edges), warning levels, typed
//! cells and keys, chunks of raw records as sources read them, and dead letters
//! with their reasons and origins. It depends on nothing else of yujing.

pub mod calendar;
pub mod chunk;
pub mod deadletter;
pub mod field;
pub mod key;
pub mod level;
pub mod pseudonym;
pub mod stage;
pub mod time;
