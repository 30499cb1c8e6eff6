//! HTTP tests against the real application on port 0, each with its own database, on MariaDB
//! and on SQLite.
mod batches;
mod campaigns;
mod claims;
mod components;
mod contract;
mod dashboard;
mod healthcheck;
mod helpers;
mod multi_process;
mod operating;
mod operator;
mod ops;
mod outage;
mod settings;
mod shutdown;
mod spec;
