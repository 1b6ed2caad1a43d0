//! The id dictionary: round trips, lookups and refusals of malformed bytes.

use super::*;
use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use std::sync::Arc;

fn parquet(ids: ArrayRef) -> Bytes {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "id",
        ids.data_type().clone(),
        true,
    )]));
    let ids_len = ids.len();
    let batch = RecordBatch::try_new(schema.clone(), vec![ids]).unwrap();
    let mut out = Vec::new();
    // Small row groups (2 ids, or 8 groups in all): decoding spreads them over
    // threads and must keep order.
    let properties = WriterProperties::builder()
        .set_max_row_group_row_count(Some((ids_len / 8).max(2)))
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
            Dictionary::read(parquet(Arc::new(StringArray::from(ids.clone()))), None).unwrap();
        for (bit, id) in ids.iter().enumerate() {
            assert_eq!(dictionary.bit_of(id), Some(bit as u32));
            assert_eq!(dictionary.external_id(bit as u32), *id);
        }
        assert_eq!(dictionary.bit_of("z"), None);
    }
    let ints = Dictionary::read(parquet(Arc::new(Int64Array::from(vec![-5, 7, 9]))), None).unwrap();
    assert_eq!(ints.bit_of("7"), Some(1));
    assert_eq!(ints.bit_of("-5"), Some(0));
    // Only the canonical spelling is an id.
    for other in [" 7 ", "+7", "07", "7.0", "x"] {
        assert_eq!(ints.bit_of(other), None, "{other:?}");
    }
}

/// The dictionary as published (in the order of its perfect hash) and read back with
/// that hash, or as given and read with a table built at load.
fn published(ids: ArrayRef, perfect: bool) -> (Dictionary, ArrayRef) {
    if !perfect {
        return (Dictionary::read(parquet(ids.clone()), None).unwrap(), ids);
    }
    let universe = (0..ids.len() as u32).collect();
    let mapping = crate::ids::IdMapping::build(&ids, &universe, "id").unwrap();
    let ordered = mapping.dictionary.unwrap();
    let hash = mapping.hash_index.expect("distinct ids get a perfect hash");
    let bytes = Bytes::from(hash.to_bytes());
    let dictionary = Dictionary::read(parquet(ordered.clone()), Some(bytes)).unwrap();
    assert!(matches!(dictionary.index, Index::Perfect(_)));
    (dictionary, ordered)
}

#[test]
fn every_id_of_a_large_shuffled_dictionary_is_found_and_no_other() {
    // Enough ids that probes collide and wrap around the ends of their regions.
    let mut texts: Vec<String> = (0..50_000).map(|i| format!("id-{i}")).collect();
    texts.sort_by_key(|id| id.bytes().rev().collect::<Vec<_>>());
    let ints: Vec<i64> = (0..50_000).map(|i| (i * 7919) % 50_000 - 25_000).collect();
    for perfect in [false, true] {
        let (dictionary, ids) = published(Arc::new(StringArray::from(texts.clone())), perfect);
        let ids: Vec<&str> = ids.as_string::<i32>().iter().flatten().collect();
        for (bit, id) in ids.iter().enumerate() {
            assert_eq!(dictionary.bit_of(id), Some(bit as u32), "{id}");
        }
        let others = ["id-50000", "id-", "", "id-1 "];
        for other in others {
            assert_eq!(dictionary.bit_of(other), None, "{other:?}");
            assert!(!dictionary.test_bit(other, |_| true), "{other:?}");
        }
        // The batched and overlapped lookups answer exactly like `bit_of`.
        let probes: Vec<&str> = ids.iter().copied().chain(others).collect();
        let expected: Vec<Option<u32>> = probes.iter().map(|id| dictionary.bit_of(id)).collect();
        assert_eq!(dictionary.bits_of(&probes), expected);
        for (id, bit) in probes.iter().zip(&expected) {
            assert_eq!(dictionary.test_bit(id, |b| Some(b) == *bit), bit.is_some());
        }
        let (dictionary, ids) = published(Arc::new(Int64Array::from(ints.clone())), perfect);
        for (bit, id) in ids.as_primitive::<Int64Type>().values().iter().enumerate() {
            assert_eq!(dictionary.bit_of(&id.to_string()), Some(bit as u32));
        }
        assert_eq!(dictionary.bit_of("25000"), None);
    }
}

#[test]
fn a_perfect_hash_of_other_ids_is_refused() {
    let ids = |prefix: &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(
            (0..1000).map(|i| format!("{prefix}{i}")),
        ))
    };
    let universe = (0..1000).collect();
    let mapping = crate::ids::IdMapping::build(&ids("a"), &universe, "id").unwrap();
    let foreign = Bytes::from(mapping.hash_index.unwrap().to_bytes());
    let error = Dictionary::read(parquet(ids("b")), Some(foreign.clone())).unwrap_err();
    assert!(error.0.contains("does not lead id"), "{error}");
    let error = Dictionary::read(parquet(ids("a")), Some(foreign.slice(..100))).unwrap_err();
    assert!(error.0.contains("truncated"), "{error}");
}

#[test]
fn repeated_or_null_ids_are_refused() {
    let repeated = Arc::new(StringArray::from(vec!["b", "a", "b"]));
    let error = Dictionary::read(parquet(repeated), None).unwrap_err();
    assert!(error.0.contains("repeats"), "{error}");
    let sorted_repeat = Arc::new(StringArray::from(vec!["a", "b", "b"]));
    assert!(Dictionary::read(parquet(sorted_repeat), None).is_err());
    let null = Arc::new(StringArray::from(vec![Some("a"), None]));
    assert!(Dictionary::read(parquet(null), None).is_err());
}
