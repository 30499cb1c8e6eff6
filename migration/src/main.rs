//! The sea-orm migration CLI for this schema (`cargo run -p migration -- up`); the service's own
//! `giftcodes migrate` does the same for deploys.
use sea_orm_migration::prelude::*;

#[tokio::main]
async fn main() {
    cli::run_cli(migration::Migrator).await;
}
