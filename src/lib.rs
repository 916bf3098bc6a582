//! yujing (预警): a streaming risk early-warning engine.
//!
//! Data flows through one module per stage: [`source`] (raw records) →
//! [`decode`] (Arrow batches, dead letters) → [`window`] (event time, watermarks,
//! window state) → [`query`] (pipeline SQL on DataFusion) → [`sink`] (outputs).
//! [`reference`] holds the district's own tables the SQL joins, [`pipeline`] reads the analyst's pipeline files, [`engine`] drives the stages,
//! [`gen`] makes synthetic feeds, and [`replay`] / [`demo`] / [`check`] are the commands.

pub mod alert;
pub mod bench_feed;
pub mod config;
pub mod core;
pub mod daemon;
pub mod decode;
pub mod demo;
pub mod detect;
pub mod driver;
pub mod engine;
pub mod error;
pub mod eval;
pub mod http;
pub mod metrics;
pub mod pipeline;
pub mod query;
pub mod reference;
pub mod replay;
pub mod schema;
pub mod secret;
pub mod sink;
pub mod source;
pub mod synth;
pub mod task;
pub mod window;
