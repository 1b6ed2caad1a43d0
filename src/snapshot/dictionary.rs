//! A run's id dictionary (`ids.parquet`, row n = external id of bit n) and its hash
//! index from external id to bit, built on every core at load.

use std::hash::BuildHasher;

use bytes::Bytes;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray, UInt64Array};
use datafusion::arrow::compute::concat;
use datafusion::arrow::datatypes::{DataType, Int64Type, UInt64Type};
use datafusion::parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ParquetRecordBatchReaderBuilder,
};
use hashbrown::{DefaultHashBuilder, HashTable};
use rayon::prelude::*;

/// Index shards: a power of two, so a hash picks its shard with a mask. Many small
/// shards, filled one at a time, keep the inserts in the CPU cache (10M ids give ~1 MiB
/// shards) and spread over the cores.
const SHARDS: usize = 64;
/// Which hash bits choose the shard: above those hashbrown uses for the bucket (low
/// bits) and below those it keeps in control bytes (top 7), so neither loses entropy.
const SHARD_SHIFT: u32 = 40;

/// The dictionary and its index: 4 bytes per customer besides the ids themselves.
#[derive(Debug)]
pub struct Dictionary {
    ids: Ids,
    shards: Vec<HashTable<u32>>,
    hasher: DefaultHashBuilder,
}

/// One external id, parsed for the dictionary's type.
#[derive(Clone, Copy, Hash, PartialEq, PartialOrd)]
enum Key<'a> {
    Signed(i64),
    Unsigned(u64),
    Text(&'a str),
}

/// The dictionary column, its type resolved once (a lookup reads it millions of times).
#[derive(Debug)]
enum Ids {
    Signed(Int64Array),
    Unsigned(UInt64Array),
    Text(StringArray),
}

impl Ids {
    fn new(ids: &ArrayRef) -> Result<Ids, String> {
        Ok(match ids.data_type() {
            DataType::Int64 => Ids::Signed(ids.as_primitive::<Int64Type>().clone()),
            DataType::UInt64 => Ids::Unsigned(ids.as_primitive::<UInt64Type>().clone()),
            DataType::Utf8 => Ids::Text(ids.as_string::<i32>().clone()),
            other => return Err(format!("unsupported id type {other}")),
        })
    }

    fn len(&self) -> usize {
        match self {
            Ids::Signed(a) => a.len(),
            Ids::Unsigned(a) => a.len(),
            Ids::Text(a) => a.len(),
        }
    }
}

#[inline]
fn key_at(ids: &Ids, row: usize) -> Key<'_> {
    match ids {
        Ids::Signed(a) => Key::Signed(a.value(row)),
        Ids::Unsigned(a) => Key::Unsigned(a.value(row)),
        Ids::Text(a) => Key::Text(a.value(row)),
    }
}

fn shard_of(hash: u64) -> usize {
    (hash >> SHARD_SHIFT) as usize & (SHARDS - 1)
}

impl Dictionary {
    /// Decodes `ids.parquet` and indexes it, refusing null or repeated ids.
    pub fn read(bytes: Bytes) -> Result<Dictionary, String> {
        let column = decode(bytes)?;
        if column.null_count() > 0 {
            return Err("the dictionary holds null ids".into());
        }
        let ids = Ids::new(&column)?;
        if ids.len() > u32::MAX as usize + 1 {
            return Err(format!("{} ids do not fit 32-bit bits", ids.len()));
        }
        let hasher = DefaultHashBuilder::default();
        let shards = build_shards(&ids, &hasher)?;
        Ok(Dictionary {
            ids,
            shards,
            hasher,
        })
    }

    /// Ids in the dictionary.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the dictionary is empty.
    pub fn is_empty(&self) -> bool {
        self.ids.len() == 0
    }

    /// The bit of an external id given as text, if the dictionary holds it.
    pub fn bit_of(&self, customer_id: &str) -> Option<u32> {
        let key = match self.ids {
            Ids::Signed(_) => Key::Signed(customer_id.trim().parse().ok()?),
            Ids::Unsigned(_) => Key::Unsigned(customer_id.trim().parse().ok()?),
            Ids::Text(_) => Key::Text(customer_id),
        };
        let hash = self.hasher.hash_one(key);
        self.shards[shard_of(hash)]
            .find(hash, |&bit| key_at(&self.ids, bit as usize) == key)
            .copied()
    }

    /// The external id of a bit, as text.
    pub fn external_id(&self, bit: u32) -> String {
        match key_at(&self.ids, bit as usize) {
            Key::Signed(v) => v.to_string(),
            Key::Unsigned(v) => v.to_string(),
            Key::Text(v) => v.to_string(),
        }
    }
}

/// Decodes the dictionary's row groups on every core, in order.
fn decode(bytes: Bytes) -> Result<ArrayRef, String> {
    let metadata =
        ArrowReaderMetadata::load(&bytes, Default::default()).map_err(|e| e.to_string())?;
    if metadata.schema().fields().len() != 1 {
        return Err("expected exactly one column".into());
    }
    let data_type = metadata.schema().field(0).data_type().clone();
    let row_groups: Vec<Result<Vec<ArrayRef>, String>> = (0..metadata.metadata().num_row_groups())
        .into_par_iter()
        .map(|row_group| {
            ParquetRecordBatchReaderBuilder::new_with_metadata(bytes.clone(), metadata.clone())
                .with_row_groups(vec![row_group])
                .with_batch_size(64 * 1024)
                .build()
                .map_err(|e| e.to_string())?
                .map(|batch| {
                    batch
                        .map(|b| b.column(0).clone())
                        .map_err(|e| e.to_string())
                })
                .collect()
        })
        .collect();
    let chunks: Vec<ArrayRef> = row_groups
        .into_iter()
        .collect::<Result<Vec<_>, String>>()?
        .into_iter()
        .flatten()
        .collect();
    let refs: Vec<&dyn Array> = chunks.iter().map(|c| c.as_ref()).collect();
    if refs.is_empty() {
        return Ok(datafusion::arrow::array::new_empty_array(&data_type));
    }
    concat(&refs).map_err(|e| e.to_string())
}

/// Hashes every id, buckets the rows by shard, then fills the shards one at a time, all on
/// every core. The writer sorts the dictionary, so ascending rows prove the ids distinct
/// and inserts need no lookup first; an unsorted dictionary is still read, checking each
/// insert.
fn build_shards(ids: &Ids, hasher: &DefaultHashBuilder) -> Result<Vec<HashTable<u32>>, String> {
    let rows = ids.len();
    let span = rows.div_ceil(rayon::current_num_threads()).max(1);
    // Per span of rows: is it ascending, and its (hash, row) pairs bucketed by shard. The
    // hash is kept: computing it again would read every id a second time, out of order.
    type Buckets = Vec<Vec<(u64, u32)>>;
    let spans: Vec<(bool, Buckets)> = (0..rows.div_ceil(span))
        .into_par_iter()
        .map(|i| {
            let (start, end) = (i * span, ((i + 1) * span).min(rows));
            // Each span also checks the pair across its left edge.
            let sorted = (start.max(1)..end).all(|r| key_at(ids, r - 1) < key_at(ids, r));
            let mut buckets: Buckets = (0..SHARDS)
                .map(|_| Vec::with_capacity((end - start) / SHARDS * 9 / 8))
                .collect();
            for row in start..end {
                let hash = hasher.hash_one(key_at(ids, row));
                buckets[shard_of(hash)].push((hash, row as u32));
            }
            (sorted, buckets)
        })
        .collect();
    let sorted = spans.iter().all(|(sorted, _)| *sorted);
    let shards: Vec<Result<HashTable<u32>, String>> = (0..SHARDS)
        .into_par_iter()
        .map(|shard| {
            let entries = spans.iter().map(|(_, b)| b[shard].len()).sum();
            let mut table = HashTable::with_capacity(entries);
            let rehash = |&bit: &u32| hasher.hash_one(key_at(ids, bit as usize));
            for &(hash, row) in spans.iter().flat_map(|(_, b)| &b[shard]) {
                let repeated = || {
                    let key = key_at(ids, row as usize);
                    table
                        .find(hash, |&bit| key_at(ids, bit as usize) == key)
                        .is_some()
                };
                if !sorted && repeated() {
                    return Err(format!("row {row} repeats an earlier id"));
                }
                table.insert_unique(hash, row, rehash);
            }
            Ok(table)
        })
        .collect();
    shards.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;
    use std::sync::Arc;

    fn parquet(ids: ArrayRef) -> Bytes {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "id",
            ids.data_type().clone(),
            true,
        )]));
        let batch = RecordBatch::try_new(schema.clone(), vec![ids]).unwrap();
        let mut out = Vec::new();
        // Row groups of 2 ids: decoding spreads them over threads and must keep order.
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .build();
        let mut writer = ArrowWriter::try_new(&mut out, schema, Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        out.into()
    }

    #[test]
    fn sorted_and_unsorted_dictionaries_find_every_id() {
        for ids in [vec!["a", "b", "c", "d", "e"], vec!["d", "a", "e", "c", "b"]] {
            let dictionary =
                Dictionary::read(parquet(Arc::new(StringArray::from(ids.clone())))).unwrap();
            for (bit, id) in ids.iter().enumerate() {
                assert_eq!(dictionary.bit_of(id), Some(bit as u32));
                assert_eq!(dictionary.external_id(bit as u32), *id);
            }
            assert_eq!(dictionary.bit_of("z"), None);
        }
        let ints = Dictionary::read(parquet(Arc::new(Int64Array::from(vec![-5, 7, 9])))).unwrap();
        assert_eq!(ints.bit_of(" 7 "), Some(1));
        assert_eq!(ints.bit_of("x"), None);
    }

    #[test]
    fn repeated_or_null_ids_are_refused() {
        let repeated = Arc::new(StringArray::from(vec!["b", "a", "b"]));
        let error = Dictionary::read(parquet(repeated)).unwrap_err();
        assert!(error.contains("repeats"), "{error}");
        let sorted_repeat = Arc::new(StringArray::from(vec!["a", "b", "b"]));
        assert!(Dictionary::read(parquet(sorted_repeat)).is_err());
        let null = Arc::new(StringArray::from(vec![Some("a"), None]));
        assert!(Dictionary::read(parquet(null)).is_err());
    }
}
