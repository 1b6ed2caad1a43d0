//! Entry points for the `fuzz/` targets: each feeds arbitrary bytes to one parser of
//! outside input and checks what must hold whatever the bytes (no panic, and agreement
//! with an independent reading where there is one). Not part of the supported API.

use std::path::Path;

use bytes::Bytes;

use crate::snapshot::index::{parse_group, MembershipIndex};

/// The Roaring portable format: refused, or read exactly as roaring-rs reads it.
pub fn portable_bitmap(data: &[u8]) {
    let Ok(parsed) = parse_group(data) else {
        return;
    };
    let theirs = roaring::RoaringBitmap::deserialize_from(data)
        .expect("a group we accept is one roaring-rs reads");
    assert_eq!(parsed.cardinality(), theirs.len());
    let index = MembershipIndex::new(vec![parsed]).expect("a parsed group indexes");
    assert_eq!(index.bitmap(0), theirs);
    for bit in theirs.iter().take(64) {
        assert!(index.contains(0, bit));
    }
}

/// `ids.phf`.
pub fn ids_phf(data: &[u8]) {
    if let Ok(hash) = crate::ids::perfect_hash::PerfectHash::from_bytes(data) {
        for key in [&b"C1"[..], b"", &data[..data.len().min(16)]] {
            assert!(hash.row(key) < hash.keys(), "every key lands on a row");
        }
    }
}

/// `manifest.json`.
pub fn manifest(data: &[u8]) {
    let _ = crate::snapshot::reader::parse_manifest("20261122T000000Z-000000000000", data);
}

/// `ids.parquet`, alone and with the first bytes as its perfect hash.
pub fn id_dictionary(data: &[u8]) {
    let split = data.first().map_or(0, |b| *b as usize).min(data.len());
    let (hash, dictionary) = data.split_at(split);
    let dictionary = Bytes::copy_from_slice(dictionary);
    let _ = crate::ids::dictionary::Dictionary::read(dictionary.clone(), None);
    let _ =
        crate::ids::dictionary::Dictionary::read(dictionary, Some(Bytes::copy_from_slice(hash)));
}

/// A group definition in TOML.
pub fn definition_toml(data: &[u8]) {
    definition(data, "fuzzed.toml");
}

/// A group definition in JSON.
pub fn definition_json(data: &[u8]) {
    definition(data, "fuzzed.json");
}

fn definition(data: &[u8], name: &str) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok((group, _problems)) = crate::definition::parse_group(Path::new(name), text) {
            let _ = crate::definition::lint(&[group]);
        }
    }
}

/// A time window.
pub fn window(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(nanos) = crate::definition::Window::parse(text).map(|w| w.nanos()) {
            assert!((0..=i64::MAX as i128).contains(&nanos));
        }
    }
}

/// A customer id written as text.
pub fn customer_id(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(id) = crate::ids::canonical::<i64>(text) {
            assert_eq!(id.to_string(), text, "only the canonical spelling is an id");
        }
        if let Some(id) = crate::ids::canonical::<u32>(text) {
            assert_eq!(id.to_string(), text);
        }
    }
}

/// The object paths under a table's folder (names anyone can give files): classified as
/// read, hidden, not Parquet, a lakehouse table or a partition layout, never a panic; a
/// listing that is accepted reads only `.parquet` files with no hidden name.
pub fn table_listing(data: &[u8]) {
    use object_store::path::Path as StorePath;
    let text = String::from_utf8_lossy(data);
    let store = std::sync::Arc::new(object_store::memory::InMemory::new());
    let location = crate::snapshot::Location::in_store(store, "table");
    let objects = text
        .lines()
        .filter_map(|line| StorePath::parse(format!("table/{line}")).ok())
        .map(|location| object_store::ObjectMeta {
            location,
            last_modified: chrono::DateTime::UNIX_EPOCH,
            size: 0,
            e_tag: None,
            version: None,
        })
        .collect();
    if let Ok((files, columns, _)) = crate::evaluate::files::folder(&location, "fuzzed", objects) {
        for (file, values) in files {
            assert!(file
                .location
                .as_ref()
                .ends_with(crate::evaluate::files::PARQUET));
            assert_eq!(values.len(), columns.len());
        }
    }
}
