//! One storage suite, run against local disk (plain path and `file://`), a real
//! S3-compatible server (moto), a GCS emulator (fake-gcs-server behind
//! `tests/gcs_xml_shim.py`) and an Azure Blob emulator (Azurite), all on loopback: every URL the CLI reads or writes goes through it.

use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};

use super::harness::{runtime, sample_project, skipped, Azurite, GcsEmulator, Moto, Project};

/// Where the suite puts its inputs and outputs: a base URL, the store behind it (for the
/// test's own reads and writes), and the environment `cohort` needs to reach it.
struct Target {
    base: String,
    store: Arc<dyn ObjectStore>,
    env: Vec<(String, String)>,
}

fn storage_suite(target: &Target) {
    let rt = runtime();
    let p = sample_project("int");
    let base = target.base.trim_end_matches('/');
    let put = |rel: &str, bytes: Vec<u8>| {
        rt.block_on(target.store.put(&StorePath::from(rel), bytes.into()))
            .unwrap();
    };
    let get = |rel: &str| -> Option<Vec<u8>> {
        rt.block_on(async {
            match target.store.get(&StorePath::from(rel)).await {
                Ok(r) => Some(r.bytes().await.unwrap().to_vec()),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => panic!("{e}"),
            }
        })
    };
    for (local, remote) in [
        ("data/customers.parquet", "input/customers.parquet"),
        ("data/orders.parquet", "input/orders.parquet"),
        ("data/vip.csv", "lists/vip.csv"),
        ("data/suppressed.csv", "lists/suppressed.csv"),
    ] {
        put(remote, std::fs::read(p.path(local)).unwrap());
    }
    // The same job with every input on local disk: the reference answer.
    let local = p
        .cohort(&[
            "run",
            "--dry-run",
            "--as-of=2026-11-20T00:00:00Z",
            "--format=json",
        ])
        .ok()
        .json();
    // Static lists are read from the store too.
    let vip = std::fs::read_to_string(p.path("queries/vip.toml"))
        .unwrap()
        .replace("\"data/", &format!("\"{base}/lists/"));
    p.write("queries/vip.toml", &vip);

    let customers = format!("--customers={base}/input/customers.parquet");
    let events = format!("--events=orders={base}/input/orders.parquet");
    let publish = format!("--publish={base}/snap");
    let cohort = |args: &[&str]| p.cohort_with_env(args, &target.env);

    let first = cohort(&[
        "run",
        &customers,
        &events,
        &publish,
        "--as-of=2026-11-20T00:00:00Z",
        "--format=json",
    ])
    .ok()
    .json();
    let run_id = first["run_id"].as_str().unwrap().to_string();
    assert_eq!(first["customers"], 3000);
    assert_eq!(
        member_counts(&first),
        member_counts(&local),
        "customers, orders and lists read from the store give the local answer"
    );
    assert!(
        member_counts(&first)
            .iter()
            .any(|(g, n)| g == "lapsed" && *n > 0),
        "the behavioural groups are evaluated"
    );
    let latest = String::from_utf8(get("snap/LATEST").expect("LATEST published")).unwrap();
    assert_eq!(latest.trim(), run_id);
    assert!(get(&format!("snap/runs/{run_id}/manifest.json")).is_some());

    // Lookups read the published run from the store.
    let vip_members = first["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "vip")
        .unwrap()["members"]
        .as_u64()
        .unwrap();
    let check = cohort(&["check", "vip", "7", &publish, "--format=json"])
        .ok()
        .json();
    assert_eq!(check["member"], true, "inline static include");
    let groups_of = cohort(&["groups-of", "7", &publish, "--format=json"])
        .ok()
        .json();
    assert!(groups_of["groups"]
        .as_array()
        .unwrap()
        .contains(&"vip".into()));

    // Export writes to the store.
    let out = format!("--out={base}/exports/vip.csv");
    cohort(&["export", "vip", &out, &publish]).ok();
    let exported = String::from_utf8(get("exports/vip.csv").expect("export written")).unwrap();
    assert_eq!(
        exported.lines().count() as u64,
        vip_members + 1,
        "header + ids"
    );

    // A second run, then the run catalog: list, diff, gc.
    let second = cohort(&[
        "run",
        &customers,
        &publish,
        "--as-of=2026-11-21T00:00:00Z",
        "--format=json",
    ])
    .ok()
    .json();
    assert_ne!(second["run_id"], first["run_id"]);
    let runs = cohort(&["runs", &publish, "--format=json"]).ok().json();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 2);
    let diff = cohort(&["diff", &publish, "--format=json"]).ok().json();
    assert_eq!(diff["from"], first["run_id"]);
    assert_eq!(diff["to"], second["run_id"]);
    let gc = cohort(&["gc", "--keep=1", "--min-age=0s", &publish, "--format=json"])
        .ok()
        .json();
    assert_eq!(gc["deleted"], serde_json::json!([run_id]));
    assert!(get(&format!("snap/runs/{run_id}/manifest.json")).is_none());
    cohort(&["check", "vip", "7", &publish]).ok();

    // A permanent error names the URL and exits 1.
    let missing = cohort(&[
        "run",
        &format!("--customers={base}/input/nope.parquet"),
        &publish,
    ]);
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("nope.parquet"),
        "the error names the URL: {}",
        missing.stderr
    );
}

/// (group, members) of a run report, in report order.
fn member_counts(report: &serde_json::Value) -> Vec<(String, u64)> {
    report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["group"].as_str().unwrap().to_string(),
                g["members"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn local_target(project: &Project, as_file_url: bool) -> Target {
    let root = project.path("store");
    std::fs::create_dir_all(&root).unwrap();
    let root = root.canonicalize().unwrap();
    let base = if as_file_url {
        format!("file://{}", root.display())
    } else {
        root.display().to_string()
    };
    Target {
        base,
        store: Arc::new(LocalFileSystem::new_with_prefix(&root).unwrap()),
        env: Vec::new(),
    }
}

#[test]
fn storage_suite_on_a_local_path() {
    let scratch = Project::new();
    storage_suite(&local_target(&scratch, false));
}

#[test]
fn storage_suite_on_file_urls() {
    let scratch = Project::new();
    storage_suite(&local_target(&scratch, true));
}

#[test]
fn storage_suite_on_s3() {
    let moto = Moto::start();
    moto.create_bucket("cohort-test");
    storage_suite(&Target {
        base: "s3://cohort-test/team".into(),
        store: Arc::new(object_store::prefix::PrefixStore::new(
            moto.store("cohort-test"),
            "team",
        )),
        env: moto.env(),
    });
}

#[test]
fn storage_suite_on_gcs() {
    if skipped("gcs", "storage_suite_on_gcs") {
        return;
    }
    let gcs = GcsEmulator::start();
    gcs.create_bucket("cohort-test");
    storage_suite(&Target {
        base: "gs://cohort-test/team".into(),
        store: Arc::new(object_store::prefix::PrefixStore::new(
            gcs.store("cohort-test"),
            "team",
        )),
        env: gcs.env(),
    });
}

#[test]
fn storage_suite_on_azure() {
    if skipped("azurite", "storage_suite_on_azure") {
        return;
    }
    let azurite = Azurite::start();
    azurite.create_container("cohort-test");
    storage_suite(&Target {
        base: "az://cohort-test/team".into(),
        store: Arc::new(object_store::prefix::PrefixStore::new(
            azurite.store("cohort-test"),
            "team",
        )),
        env: azurite.env(),
    });
}
