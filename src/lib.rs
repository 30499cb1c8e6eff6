//! giftcodes: a service that hands out pre-loaded gift-certificate codes, one per user, never
//! the same code twice, never more per day than a campaign's limit.
pub mod api;
pub mod claim;
pub mod config;
pub mod domain;
pub mod error;
pub mod healthcheck;
pub mod metrics;
pub mod startup;
pub mod store;
pub mod telemetry;
mod upload;
