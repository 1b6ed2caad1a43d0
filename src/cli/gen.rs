//! `cohort gen`: write synthetic customers and orders as Parquet.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::output;
use super::synthetic::{self as gen, GenOptions, IdType};
use cohort::{Error, Result};

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Number of customers
    #[arg(long, default_value_t = 10_000)]
    customers: u64,
    /// Number of orders (0: no orders table)
    #[arg(long, default_value_t = 0)]
    orders: u64,
    /// Customer id type
    #[arg(long, value_enum, default_value_t = GenIdType::Int)]
    id_type: GenIdType,
    /// Random seed: the same seed gives the same data
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Date relative fields (last visit, signup) are anchored to
    #[arg(long, default_value = "2026-11-01")]
    anchor: String,
    /// Output folder
    #[arg(long, default_value = "data")]
    out: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum GenIdType {
    Int,
    String,
}

pub fn run(args: GenArgs) -> Result<()> {
    let anchor = chrono::NaiveDate::parse_from_str(&args.anchor, "%Y-%m-%d").map_err(|_| {
        Error::Setting {
            setting: "--anchor".into(),
            value: args.anchor.clone(),
            reason: "expected YYYY-MM-DD".into(),
        }
    })?;
    let options = GenOptions {
        customers: args.customers,
        id_type: match args.id_type {
            GenIdType::Int => IdType::Int,
            GenIdType::String => IdType::String,
        },
        seed: args.seed,
        anchor,
    };
    let path = gen::write_customers(&options, &args.out)?;
    output::note(format_args!(
        "wrote {} customers to {}",
        args.customers,
        path.display()
    ));
    if args.orders > 0 {
        let path = gen::write_orders(&options, args.orders, &args.out)?;
        output::note(format_args!(
            "wrote {} orders to {}",
            args.orders,
            path.display()
        ));
    }
    Ok(())
}
