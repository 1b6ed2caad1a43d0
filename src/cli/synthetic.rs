//! `cohort gen`: realistic synthetic customers, deterministic by seed.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, Int64Builder,
    ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use cohort::{Error, Result};

/// How customer ids are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdType {
    /// 1, 2, 3, ...
    Int,
    /// `C00000001`, ...
    String,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// Number of customers.
    pub customers: u64,
    /// Id type.
    pub id_type: IdType,
    /// Random seed: same seed, same data.
    pub seed: u64,
    /// Date that relative fields (last visit, signup) are anchored to.
    pub anchor: NaiveDate,
}

/// A state (or province) and some of its cities.
type State = (&'static str, &'static [&'static str]);

const GEO: &[(&str, &[State])] = &[
    (
        "United States",
        &[
            ("Alaska", &["Anchorage", "Fairbanks", "Juneau"]),
            ("Florida", &["Miami", "Orlando", "Tampa", "Jacksonville"]),
            ("Alabama", &["Birmingham", "Montgomery", "Mobile"]),
            (
                "California",
                &["Los Angeles", "San Francisco", "San Diego", "Sacramento"],
            ),
            ("Texas", &["Houston", "Austin", "Dallas", "San Antonio"]),
            ("New York", &["New York", "Buffalo", "Albany"]),
            ("Washington", &["Seattle", "Spokane", "Tacoma"]),
        ],
    ),
    (
        "Canada",
        &[
            ("British Columbia", &["Vancouver", "Victoria", "Kelowna"]),
            ("Nova Scotia", &["Halifax", "Sydney"]),
            ("Ontario", &["Toronto", "Ottawa", "Hamilton"]),
            ("Quebec", &["Montréal", "Québec"]),
            ("Alberta", &["Calgary", "Edmonton"]),
        ],
    ),
    (
        "Mexico",
        &[
            ("Jalisco", &["Guadalajara"]),
            ("Nuevo León", &["Monterrey"]),
            ("Ciudad de México", &["Ciudad de México"]),
        ],
    ),
    (
        "United Kingdom",
        &[
            ("England", &["London", "Manchester", "Leeds"]),
            ("Scotland", &["Edinburgh", "Glasgow"]),
            ("Wales", &["Cardiff"]),
        ],
    ),
    (
        "Germany",
        &[
            ("Bavaria", &["München", "Nürnberg"]),
            ("Berlin", &["Berlin"]),
            ("Hesse", &["Frankfurt"]),
        ],
    ),
];
/// Country weights, parallel to `GEO`.
const COUNTRY_WEIGHTS: &[u32] = &[55, 15, 10, 12, 8];
const FIRST: &[&str] = &[
    "james", "mary", "li", "sofia", "omar", "anna", "lukas", "amelia", "noah", "chloe", "mateo",
    "zoe", "ravi", "emma", "yuki", "lea",
];
const LAST: &[&str] = &[
    "smith", "garcia", "chen", "muller", "martin", "brown", "tremblay", "nguyen", "kowalski",
    "silva", "jones", "patel",
];
const DOMAINS: &[&str] = &[
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "example.com",
    "proton.me",
    "icloud.com",
];
const TIERS: &[&str] = &["bronze", "silver", "gold", "platinum"];
const TAGS: &[&str] = &[
    "newsletter",
    "vip",
    "sale-hunter",
    "eco",
    "outdoor",
    "tech",
    "fashion",
    "family",
    "pets",
    "sports",
];

/// Rows per generated batch (and Parquet write call).
const CHUNK: u64 = 65_536;

/// The customers schema `gen` writes.
pub fn customers_schema(id_type: IdType) -> Arc<Schema> {
    let id = match id_type {
        IdType::Int => DataType::Int64,
        IdType::String => DataType::Utf8,
    };
    Arc::new(Schema::new(vec![
        Field::new("customer_id", id, false),
        Field::new("email", DataType::Utf8, true),
        Field::new("gender", DataType::Utf8, true),
        Field::new("age", DataType::Int32, true),
        Field::new("birth_date", DataType::Date32, true),
        Field::new("country", DataType::Utf8, true),
        Field::new("state", DataType::Utf8, true),
        Field::new("city", DataType::Utf8, true),
        Field::new("registered", DataType::Boolean, true),
        Field::new("loyalty_tier", DataType::Utf8, true),
        Field::new("brand_conscious", DataType::Boolean, true),
        Field::new("store_shopper", DataType::Boolean, true),
        Field::new("signup_date", DataType::Date32, true),
        Field::new(
            "last_visit_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("order_count", DataType::Int32, true),
        Field::new("total_spend", DataType::Float64, true),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
    ]))
}

/// A snappy Parquet writer for `out_dir/name` (1M-row row groups).
fn parquet_writer(
    out_dir: &Path,
    name: &str,
    schema: &Arc<Schema>,
) -> Result<(std::path::PathBuf, ArrowWriter<File>)> {
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir.display(), e))?;
    let path = out_dir.join(name);
    let file = File::create(&path).map_err(|e| Error::io(path.display(), e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(1 << 20))
        .build();
    let writer = ArrowWriter::try_new(file, schema.clone(), Some(props))?;
    Ok((path, writer))
}

/// Writes `customers.parquet` into `out_dir`. Returns the file path.
pub fn write_customers(options: &GenOptions, out_dir: &Path) -> Result<std::path::PathBuf> {
    let schema = customers_schema(options.id_type);
    let (path, mut writer) = parquet_writer(out_dir, "customers.parquet", &schema)?;
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut next_id = 1u64;
    while next_id <= options.customers {
        let n = CHUNK.min(options.customers - next_id + 1);
        let batch = customers_batch(&schema, options, &mut rng, next_id, n)?;
        writer.write(&batch)?;
        next_id += n;
    }
    writer.close()?;
    Ok(path)
}

const CATEGORIES: &[&str] = &[
    "shoes",
    "apparel",
    "accessories",
    "beauty",
    "home",
    "electronics",
    "sports",
    "toys",
];
const CATEGORY_WEIGHTS: &[u32] = &[18, 30, 12, 10, 10, 8, 7, 5];
const CHANNELS: &[&str] = &["web", "app", "store", "phone"];
const CHANNEL_WEIGHTS: &[u32] = &[45, 30, 22, 3];

/// The orders table's schema; `customer_id` has the customers' id type.
pub fn orders_schema(id_type: IdType) -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new(
            "customer_id",
            match id_type {
                IdType::Int => DataType::Int64,
                IdType::String => DataType::Utf8,
            },
            true,
        ),
        Field::new(
            "ordered_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("amount", DataType::Float64, true),
        Field::new("category", DataType::Utf8, true),
        Field::new("channel", DataType::Utf8, true),
        Field::new("items", DataType::Int32, true),
    ]))
}

/// Writes `orders.parquet` (`orders` rows, in time order over the three years before the
/// anchor plus a few weeks after it) into `out_dir`. Customers are skewed: a few order
/// often, many rarely or never; 0.5% of orders name customers not in the customers table.
pub fn write_orders(
    options: &GenOptions,
    orders: u64,
    out_dir: &Path,
) -> Result<std::path::PathBuf> {
    let schema = orders_schema(options.id_type);
    let (path, mut writer) = parquet_writer(out_dir, "orders.parquet", &schema)?;
    // A separate stream: customers.parquet is the same with or without orders.
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0x6f72_6465_7273);
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let anchor_us = (options.anchor - epoch).num_microseconds().unwrap_or(0);
    let start_us = anchor_us - Duration::days(3 * 365).num_microseconds().unwrap();
    let span_us = Duration::days(3 * 365 + 28).num_microseconds().unwrap();
    let mut next = 0u64;
    while next < orders {
        let n = CHUNK.min(orders - next);
        let mut order_id = Int64Builder::new();
        let mut id_int = Int64Builder::new();
        let mut id_str = StringBuilder::new();
        let mut ordered_at = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        let mut amount = Float64Builder::new();
        let mut category = StringBuilder::new();
        let mut channel = StringBuilder::new();
        let mut items = Int32Builder::new();
        for i in next..next + n {
            order_id.append_value(i as i64 + 1);
            let customer = if rng.random_bool(0.005) || options.customers == 0 {
                options.customers + 1 + rng.random_range(0..1000)
            } else {
                // Squaring a uniform number skews orders towards low ids.
                let u: f64 = rng.random();
                1 + ((u * u) * options.customers as f64) as u64 % options.customers
            };
            match options.id_type {
                IdType::Int => id_int.append_value(customer as i64),
                IdType::String => id_str.append_value(format!("C{customer:08}")),
            }
            let at = start_us + (span_us as f64 * i as f64 / orders as f64) as i64;
            ordered_at.append_value(at + rng.random_range(0..60_000_000));
            let count = 1 + weighted(&mut rng, &[55, 25, 10, 6, 4]) as i32;
            items.append_option(rng.random_bool(0.99).then_some(count));
            amount
                .append_option(rng.random_bool(0.99).then(|| {
                    (count as f64 * rng.random_range(8.0..180.0) * 100.0).round() / 100.0
                }));
            category.append_option(
                rng.random_bool(0.98)
                    .then(|| CATEGORIES[weighted(&mut rng, CATEGORY_WEIGHTS)]),
            );
            channel.append_value(CHANNELS[weighted(&mut rng, CHANNEL_WEIGHTS)]);
        }
        let customer_id: ArrayRef = match options.id_type {
            IdType::Int => Arc::new(id_int.finish()),
            IdType::String => Arc::new(id_str.finish()),
        };
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(order_id.finish()),
                customer_id,
                Arc::new(ordered_at.finish()),
                Arc::new(amount.finish()),
                Arc::new(category.finish()),
                Arc::new(channel.finish()),
                Arc::new(items.finish()),
            ],
        )?;
        writer.write(&batch)?;
        next += n;
    }
    writer.close()?;
    Ok(path)
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn weighted(rng: &mut ChaCha8Rng, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum();
    let mut x = rng.random_range(0..total);
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

fn customers_batch(
    schema: &Arc<Schema>,
    o: &GenOptions,
    rng: &mut ChaCha8Rng,
    first: u64,
    n: u64,
) -> Result<RecordBatch> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let days = |d: NaiveDate| (d - epoch).num_days() as i32;
    let anchor_days = days(o.anchor);
    let anchor_us = (o.anchor - epoch).num_microseconds().unwrap_or(0);
    let mut id_int = Int64Builder::new();
    let mut id_str = StringBuilder::new();
    let mut email = StringBuilder::new();
    let mut gender = StringBuilder::new();
    let mut age = Int32Builder::new();
    let mut birth = Date32Builder::new();
    let mut country = StringBuilder::new();
    let mut state = StringBuilder::new();
    let mut city = StringBuilder::new();
    let mut registered = BooleanBuilder::new();
    let mut tier = StringBuilder::new();
    let mut brand = BooleanBuilder::new();
    let mut store = BooleanBuilder::new();
    let mut signup = Date32Builder::new();
    let mut last_visit = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut orders = Int32Builder::new();
    let mut spend = Float64Builder::new();
    let mut tags = ListBuilder::new(StringBuilder::new());
    for id in first..first + n {
        match o.id_type {
            IdType::Int => id_int.append_value(id as i64),
            IdType::String => id_str.append_value(format!("C{id:08}")),
        }
        let (first_name, last_name) = (pick(rng, FIRST), pick(rng, LAST));
        email.append_option(rng.random_bool(0.97).then(|| {
            format!(
                "{first_name}.{last_name}{}@{}",
                id % 1000,
                pick(rng, DOMAINS)
            )
        }));
        gender.append_option(match rng.random_range(0..100) {
            0..48 => Some("female"),
            48..94 => Some("male"),
            94..97 => Some("non-binary"),
            _ => None,
        });
        // Ages skew adult; about 8% unknown, a few minors.
        let customer_age = rng.random_bool(0.92).then(|| {
            if rng.random_bool(0.06) {
                rng.random_range(13..18)
            } else {
                rng.random_range(18..90)
            }
        });
        age.append_option(customer_age);
        birth.append_option(customer_age.map(|a| anchor_days - a * 365 - rng.random_range(0..365)));
        let (country_name, states) = GEO[weighted(rng, COUNTRY_WEIGHTS)];
        country.append_value(country_name);
        let (state_name, cities) = pick(rng, states);
        let has_state = rng.random_bool(0.97);
        state.append_option(has_state.then_some(*state_name));
        city.append_option((has_state && rng.random_bool(0.95)).then(|| *pick(rng, cities)));
        registered.append_value(rng.random_bool(0.7));
        tier.append_option(
            rng.random_bool(0.8)
                .then(|| TIERS[weighted(rng, &[50, 30, 15, 5])]),
        );
        brand.append_option(rng.random_bool(0.9).then(|| rng.random_bool(0.35)));
        store.append_option(rng.random_bool(0.9).then(|| rng.random_bool(0.5)));
        let signup_days = anchor_days - rng.random_range(0..365 * 10);
        signup.append_value(signup_days);
        let visit = rng.random_bool(0.9).then(|| {
            let ago_us = (Duration::days(rng.random_range(0..730))
                + Duration::seconds(rng.random_range(0..86_400)))
            .num_microseconds()
            .unwrap();
            anchor_us - ago_us
        });
        last_visit.append_option(visit);
        let count = rng.random_range(0..40i32);
        orders.append_option(rng.random_bool(0.95).then_some(count));
        spend.append_option(
            rng.random_bool(0.95)
                .then(|| (count as f64 * rng.random_range(5.0..120.0) * 100.0).round() / 100.0),
        );
        if rng.random_bool(0.9) {
            let k = rng.random_range(0..4);
            for _ in 0..k {
                tags.values().append_value(pick(rng, TAGS));
            }
            tags.append(true);
        } else {
            tags.append(false);
        }
    }
    let id: ArrayRef = match o.id_type {
        IdType::Int => Arc::new(id_int.finish()),
        IdType::String => Arc::new(id_str.finish()),
    };
    let columns: Vec<ArrayRef> = vec![
        id,
        Arc::new(email.finish()),
        Arc::new(gender.finish()),
        Arc::new(age.finish()),
        Arc::new(birth.finish()),
        Arc::new(country.finish()),
        Arc::new(state.finish()),
        Arc::new(city.finish()),
        Arc::new(registered.finish()),
        Arc::new(tier.finish()),
        Arc::new(brand.finish()),
        Arc::new(store.finish()),
        Arc::new(signup.finish()),
        Arc::new(last_visit.finish()),
        Arc::new(orders.finish()),
        Arc::new(spend.finish()),
        Arc::new(tags.finish()),
    ];
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
