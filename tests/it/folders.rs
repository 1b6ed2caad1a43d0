//! How a folder of Parquet files is read (SPEC §1): recursively, Hive-style `key=value/`
//! folders as string columns, `_`/`.` names skipped, every file that can't be read named,
//! Delta Lake and Iceberg tables refused; the manifest's `sources` are the files read.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
use datafusion::arrow::record_batch::RecordBatch;

use super::harness::{Output, Project, AS_OF};

fn customers(ids: &[i64]) -> RecordBatch {
    let ages: Vec<i64> = ids.iter().map(|i| 20 + i).collect();
    RecordBatch::try_from_iter(vec![
        (
            "customer_id",
            Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef,
        ),
        ("age", Arc::new(Int64Array::from(ages)) as ArrayRef),
    ])
    .unwrap()
}

/// A project whose customers table is the folder `customers/` and whose one group,
/// `everyone`, holds every customer.
fn folder_project() -> Project {
    let p = Project::new();
    p.write("cohort.toml", "customers = \"customers\"\n");
    p.write("queries/everyone.toml", "[[include]]\nconditions = []\n");
    p
}

fn run(p: &Project) -> Output {
    p.cohort(&["run", "--as-of", AS_OF, "--format", "json"])
}

fn manifest(p: &Project) -> serde_json::Value {
    let latest = std::fs::read_to_string(p.path("snapshots/LATEST")).unwrap();
    let text =
        std::fs::read_to_string(p.path(&format!("snapshots/runs/{}/manifest.json", latest.trim())))
            .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn source_names(manifest: &serde_json::Value) -> Vec<String> {
    manifest["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let path = s["path"].as_str().unwrap();
            path[path.find("customers/").unwrap() + "customers/".len()..].to_string()
        })
        .collect()
}

/// A folder with a file one level down published a run over part of the customers,
/// exit 0, while `sources` listed the skipped file as read.
#[test]
fn customers_in_subfolders_are_read_and_hidden_names_skipped() {
    let p = folder_project();
    p.write_parquet("customers/a.parquet", &customers(&[1, 2]));
    p.write_parquet("customers/later/b.parquet", &customers(&[3, 4]));
    p.write_parquet("customers/later/deeper/c.parquet", &customers(&[5]));
    p.write_parquet("customers/_temporary/0/d.parquet", &customers(&[6]));
    p.write_parquet("customers/.e.parquet", &customers(&[7]));
    p.write_parquet("customers/later/_f.parquet", &customers(&[8]));
    p.write("customers/_SUCCESS", "");
    p.write("customers/later/.b.parquet.crc", "x");
    let out = run(&p).ok();
    let report = out.json();
    assert_eq!(report["customers"], 5, "{report}");
    assert_eq!(report["groups"][0]["members"], 5, "{report}");
    assert_eq!(
        source_names(&manifest(&p)),
        ["a.parquet", "later/b.parquet", "later/deeper/c.parquet"]
    );
}

/// Files that are not Parquet by name are not read, and the run says so.
#[test]
fn files_without_the_parquet_extension_are_a_warning_not_silence() {
    let p = folder_project();
    p.write_parquet("customers/a.parquet", &customers(&[1, 2]));
    p.write("customers/README.txt", "about these files");
    let out = run(&p).ok();
    assert_eq!(out.json()["customers"], 2);
    let warnings = manifest(&p)["warnings"].to_string();
    assert!(warnings.contains("README.txt"), "{warnings}");
}

#[test]
fn hive_folders_are_string_columns() {
    let p = folder_project();
    p.write_parquet("customers/country=US/a.parquet", &customers(&[1, 2, 3]));
    p.write_parquet("customers/country=DE/b.parquet", &customers(&[4]));
    p.write_parquet(
        "customers/country=New%20Zealand/c.parquet",
        &customers(&[5]),
    );
    p.write(
        "queries/us.toml",
        "[[include]]\nconditions = [{ attribute = \"country\", op = \"equals\", value = \"US\" }]\n",
    );
    p.write(
        "queries/nz.toml",
        "[[include]]\nconditions = [{ attribute = \"country\", op = \"in\", values = [\"New Zealand\"] }]\n",
    );
    let report = run(&p).ok().json();
    let members = |g: &str| {
        report["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["group"] == g)
            .unwrap()["members"]
            .clone()
    };
    assert_eq!(members("everyone"), 5, "{report}");
    assert_eq!(members("us"), 3, "{report}");
    assert_eq!(members("nz"), 1, "{report}");
}

/// DataFusion drops a file whose folders don't follow the partition layout: refused.
#[test]
fn files_outside_the_partition_layout_are_refused_naming_one() {
    let p = folder_project();
    p.write_parquet("customers/country=US/a.parquet", &customers(&[1, 2]));
    p.write_parquet("customers/stray.parquet", &customers(&[3]));
    let out = run(&p);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("stray.parquet"), "{}", out.stderr);
    assert!(!p.path("snapshots/LATEST").exists());
}

/// A truncated file among many failed the run with "corrupt footer" and the folder's URL.
#[test]
fn a_damaged_file_among_many_is_named() {
    let p = folder_project();
    for i in 0..30 {
        p.write_parquet(&format!("customers/part-{i:03}.parquet"), &customers(&[i]));
    }
    let damaged = p.path("customers/part-017.parquet");
    let bytes = std::fs::read(&damaged).unwrap();
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    for command in [&["run"][..], &["validate"], &["size", "everyone"]] {
        let out = p.cohort(&[command, &["--as-of", AS_OF]].concat());
        assert_eq!(out.code, 1, "{command:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("part-017.parquet"),
            "{command:?}: {}",
            out.stderr
        );
    }
    assert!(!p.path("snapshots/LATEST").exists());
}

/// A file whose footer reads but whose data does not: the failed scan names it.
#[test]
fn a_file_damaged_inside_its_data_is_named_when_the_scan_fails() {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let p = folder_project();
    for i in 0..10 {
        let ids: Vec<i64> = (i * 100..i * 100 + 100).collect();
        p.write_parquet(&format!("customers/part-{i:03}.parquet"), &customers(&ids));
    }
    let damaged = p.path("customers/part-006.parquet");
    let reader = SerializedFileReader::new(std::fs::File::open(&damaged).unwrap()).unwrap();
    let chunk = reader.metadata().row_group(0).column(0).clone();
    let at = chunk
        .dictionary_page_offset()
        .unwrap_or(chunk.data_page_offset()) as usize;
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[at..at + 24].fill(0xFF);
    std::fs::write(&damaged, bytes).unwrap();
    let out = run(&p);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("part-006.parquet"), "{}", out.stderr);
    assert!(!p.path("snapshots/LATEST").exists());
}

#[test]
fn a_file_whose_columns_disagree_is_named() {
    let p = folder_project();
    p.write_parquet("customers/a.parquet", &customers(&[1, 2]));
    let text_ages = RecordBatch::try_from_iter(vec![
        (
            "customer_id",
            Arc::new(Int64Array::from(vec![3])) as ArrayRef,
        ),
        ("age", Arc::new(StringArray::from(vec!["old"])) as ArrayRef),
    ])
    .unwrap();
    p.write_parquet("customers/b.parquet", &text_ages);
    let out = run(&p);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("b.parquet"), "{}", out.stderr);
}

/// A lakehouse table is never read as a folder of Parquet files (that would count the
/// rows its log has removed): where it is met, and a URL inside one, is a usage error.
#[test]
fn delta_and_iceberg_tables_are_refused_not_read_as_parquet() {
    let delta_log = "_delta_log/00000000000000000000.json";
    let iceberg = "metadata/v1.metadata.json";
    let cases: &[(&str, &[&str], &str, &str)] = &[
        (
            "the folder is a Delta table",
            &[delta_log],
            "customers",
            "Delta Lake",
        ),
        (
            "a Delta table inside the folder",
            &["t/_delta_log/00000000000000000000.json"],
            "customers",
            "Delta Lake",
        ),
        (
            "the folder is an Iceberg table",
            &[iceberg],
            "customers",
            "Iceberg",
        ),
        (
            "a file inside a Delta table",
            &[delta_log],
            "customers/part-0.parquet",
            "Delta Lake",
        ),
        (
            "a file inside an Iceberg table",
            &[iceberg],
            "customers/data/part-0.parquet",
            "Iceberg",
        ),
    ];
    for (case, markers, url, want) in cases {
        let p = folder_project();
        p.write_parquet("customers/part-0.parquet", &customers(&[1]));
        p.write_parquet("customers/data/part-0.parquet", &customers(&[1]));
        for marker in *markers {
            p.write(&format!("customers/{marker}"), "{}");
        }
        let out = p.cohort(&["run", "--as-of", AS_OF, "--customers", url]);
        assert_eq!(out.code, 2, "{case}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{case}: {}", out.stderr);
        assert!(!p.path("snapshots/LATEST").exists(), "{case}");
    }
}

/// Event tables are folders like the customers table.
#[test]
fn event_tables_in_subfolders_are_read() {
    let p = folder_project();
    p.write_parquet("customers/a.parquet", &customers(&[1, 2, 3]));
    let orders = |ids: Vec<i64>| {
        let n = ids.len();
        RecordBatch::try_from_iter(vec![
            ("customer_id", Arc::new(Int64Array::from(ids)) as ArrayRef),
            (
                "ordered_at",
                Arc::new(
                    datafusion::arrow::array::TimestampMicrosecondArray::from(vec![
                        1_763_000_000_000_000i64;
                        n
                    ])
                    .with_timezone("UTC"),
                ) as ArrayRef,
            ),
        ])
        .unwrap()
    };
    p.write_parquet("orders/2025/a.parquet", &orders(vec![1]));
    p.write_parquet("orders/2026/b.parquet", &orders(vec![2, 2]));
    p.write_parquet("orders/_staging/c.parquet", &orders(vec![3]));
    p.write(
        "cohort.toml",
        "customers = \"customers\"\n[events.orders]\nurl = \"orders\"\n",
    );
    p.write(
        "queries/buyers.toml",
        "[[include]]\nconditions = [{ events = \"orders\", aggregate = \"count\", op = \">=\", value = 1 }]\n",
    );
    let report = run(&p).ok().json();
    let buyers = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "buyers")
        .unwrap()["members"]
        .clone();
    assert_eq!(buyers, 2, "{report}");
}
