//! Faults: a fault-injecting HTTP proxy on loopback in front of a real S3 server (moto)
//! fails one chosen request of a publish or a load, transiently (a 503, which the client
//! retries) or permanently (a 403 from then on). A transient fault changes nothing; a
//! permanent one fails the command with exit 1, leaves `LATEST` where it was and nothing
//! half-visible.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::path::Path as StorePath;
use object_store::ObjectStoreExt;

use super::harness::{runtime, Moto, Output, Project};

/// What the proxy does to request number `at` (counted from 0 since the last `reset`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// Forward everything.
    None,
    /// Answer request `at` with 503 Slow Down, once.
    Transient { at: usize },
    /// Answer request `at` and every later one with 403 Forbidden.
    Permanent { at: usize },
}

struct FaultProxy {
    port: u16,
    fault: Arc<Mutex<Fault>>,
    count: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    fn start(upstream: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let fault = Arc::new(Mutex::new(Fault::None));
        let count = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, c, l, s) = (fault.clone(), count.clone(), log.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (f, c, l) = (f.clone(), c.clone(), l.clone());
                        std::thread::spawn(move || {
                            let _ = handle(client, upstream, &f, &c, &l);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultProxy {
            port,
            fault,
            count,
            log,
            stop,
            thread: Some(thread),
        }
    }

    fn reset(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
        self.count.store(0, Ordering::SeqCst);
        self.log.lock().unwrap().clear();
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request: read it whole, fail it or forward it (one request per connection).
fn handle(
    mut client: TcpStream,
    upstream: u16,
    fault: &Mutex<Fault>,
    count: &AtomicUsize,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    client.set_nonblocking(false)?;
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let length: usize = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    client.read_exact(&mut body)?;
    let line = text.lines().next().unwrap_or_default().to_string();
    let n = count.fetch_add(1, Ordering::SeqCst);
    log.lock().unwrap().push(line);
    let status = match *fault.lock().unwrap() {
        Fault::Transient { at } if n == at => Some("503 Slow Down"),
        Fault::Permanent { at } if n >= at => Some("403 Forbidden"),
        _ => None,
    };
    if let Some(status) = status {
        let body =
            "<Error><Code>Injected</Code><Message>fault injected by the test</Message></Error>";
        write!(
            client,
            "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        return Ok(());
    }
    let mut server = TcpStream::connect(("127.0.0.1", upstream))?;
    let head: String = text
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect::<Vec<_>>()
        .join("\r\n");
    let head = head.trim_end_matches("\r\n").to_string() + "\r\nConnection: close\r\n\r\n";
    server.write_all(head.as_bytes())?;
    server.write_all(&body)?;
    std::io::copy(&mut server, &mut client)?;
    Ok(())
}

struct Setup {
    _moto: Moto,
    proxy: FaultProxy,
    store: Arc<dyn object_store::ObjectStore>,
    project: Project,
}

fn setup() -> Setup {
    let moto = Moto::start();
    moto.create_bucket("faults");
    let upstream: u16 = moto.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = FaultProxy::start(upstream);
    let store = moto.store("faults");
    let project = Project::new();
    project
        .cohort(&["gen", "--customers", "2000", "--seed", "5", "--out", "."])
        .ok();
    project.write(
        "queries/adults.toml",
        "[[include]]\nconditions = [{ attribute = \"age\", op = \">=\", value = 18 }]\n",
    );
    project.write("queries/all.toml", "[[include]]\nconditions = []\n");
    Setup {
        _moto: moto,
        proxy,
        store,
        project,
    }
}

impl Setup {
    /// `cohort` through the proxy.
    fn cohort(&self, args: &[&str]) -> Output {
        let env: Vec<(String, String)> = [
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.proxy.port),
            ),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        self.project.cohort_with_env(args, &env)
    }

    fn latest(&self) -> Option<String> {
        runtime().block_on(async {
            match self.store.get(&StorePath::from("snap/LATEST")).await {
                Ok(r) => Some(String::from_utf8(r.bytes().await.unwrap().to_vec()).unwrap()),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => panic!("{e}"),
            }
        })
    }

    /// A run with an `as_of` newer than every earlier one (so it would move `LATEST`).
    fn run(&self, n: u32) -> Output {
        self.cohort(&[
            "run",
            "--customers=customers.parquet",
            "--publish=s3://faults/snap",
            &format!("--as-of=2026-11-01T{:02}:{:02}:00Z", n / 60, n % 60),
        ])
    }

    fn check(&self) -> Output {
        self.cohort(&[
            "check",
            "adults",
            "7",
            "--publish=s3://faults/snap",
            "--format=json",
        ])
    }
}

#[test]
fn a_fault_at_any_request_of_a_publish_or_a_load_is_retried_or_fails_cleanly() {
    let s = setup();
    s.proxy.reset(Fault::None);
    s.run(1).ok();
    let first = s.latest().expect("published");
    let answer = s.check().ok().json()["member"].clone();

    // How many requests an undisturbed publish makes.
    s.proxy.reset(Fault::None);
    s.run(2).ok();
    let publish_requests = s.proxy.requests();
    assert!(publish_requests.len() >= 5, "{publish_requests:?}");
    let mut latest = s.latest().unwrap();
    assert_ne!(latest, first);

    // Past the write of LATEST the run is published: a permanent fault there (in the
    // check made afterwards) is only a warning.
    let pointed = publish_requests
        .iter()
        .position(|r| r.starts_with("PUT") && r.contains("/LATEST"))
        .expect("a publish writes LATEST");
    for (at, request) in publish_requests.iter().enumerate() {
        let n = 3 + 2 * at as u32;
        // Transient: retried, the publish succeeds and LATEST moves.
        s.proxy.reset(Fault::Transient { at });
        let out = s.run(n);
        assert_eq!(
            out.code, 0,
            "transient fault at {}: {}",
            request, out.stderr
        );
        latest = s.latest().unwrap();
        // Permanent: exit 1, LATEST unchanged, the run it names still loads.
        s.proxy.reset(Fault::Permanent { at });
        let out = s.run(n + 1);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        if at > pointed {
            assert_eq!(out.code, 0, "fault at {}: {}", request, out.stderr);
            assert_ne!(s.latest().unwrap(), latest);
        } else {
            assert_eq!(
                out.code, 1,
                "permanent fault at {}: {}",
                request, out.stderr
            );
            assert!(
                out.stderr.contains("s3://faults/snap"),
                "names the URL: {}",
                out.stderr
            );
            assert_eq!(
                s.latest().unwrap(),
                latest,
                "permanent fault at {}",
                request
            );
        }
        s.proxy.reset(Fault::None);
        assert_eq!(s.check().ok().json()["member"], answer);
    }

    s.proxy.reset(Fault::None);
    s.check().ok();
    let load_requests = s.proxy.requests();
    assert!(load_requests.len() >= 3, "{load_requests:?}");
    for (at, request) in load_requests.iter().enumerate() {
        s.proxy.reset(Fault::Transient { at });
        let out = s.check();
        assert_eq!(
            out.code, 0,
            "transient fault at {}: {}",
            request, out.stderr
        );
        assert_eq!(out.json()["member"], answer);
        s.proxy.reset(Fault::Permanent { at });
        let out = s.check();
        assert_eq!(
            out.code, 1,
            "permanent fault at {}: {}",
            request, out.stderr
        );
        assert!(out.stderr.contains("s3://faults/snap"), "{}", out.stderr);
    }
}

/// The same faults one level down, on local disk: an `ObjectStore` wrapper that fails its
/// `n`th call of any kind (put, get, head, list, delete) from then on. Local disk has no
/// transient faults to retry; a permanent one must fail the publish or the load clearly,
/// leave `LATEST` unchanged and nothing half-visible.
#[derive(Debug)]
struct FailingStore {
    inner: Arc<dyn object_store::ObjectStore>,
    calls: AtomicUsize,
    fail_from: usize,
    log: Mutex<Vec<String>>,
}

impl FailingStore {
    fn call(&self, what: String) -> object_store::Result<()> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        self.log.lock().unwrap().push(what.clone());
        if n >= self.fail_from {
            return Err(object_store::Error::Generic {
                store: "failing",
                source: format!("injected fault at call {n}: {what}").into(),
            });
        }
        Ok(())
    }
}

impl std::fmt::Display for FailingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FailingStore({})", self.inner)
    }
}

#[async_trait::async_trait]
impl object_store::ObjectStore for FailingStore {
    async fn put_opts(
        &self,
        location: &StorePath,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.call(format!("put {location}"))?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &StorePath,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.call(format!("put multipart {location}"))?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &StorePath,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.call(format!("get {location}"))?;
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<'static, object_store::Result<StorePath>>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<StorePath>> {
        if let Err(e) = self.call("delete".into()) {
            return Box::pin(futures::stream::once(async move { Err(e) }));
        }
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&StorePath>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        if let Err(e) = self.call(format!("list {prefix:?}")) {
            return Box::pin(futures::stream::once(async move { Err(e) }));
        }
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&StorePath>,
    ) -> object_store::Result<object_store::ListResult> {
        self.call(format!("list/ {prefix:?}"))?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &StorePath,
        to: &StorePath,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.call(format!("copy {from}"))?;
        self.inner.copy_opts(from, to, options).await
    }
}

/// A publish location on local disk through a `FailingStore` that fails from call `n` on.
fn failing_location(
    dir: &std::path::Path,
    fail_from: usize,
) -> (cohort::snapshot::location::Location, Arc<FailingStore>) {
    let store = Arc::new(FailingStore {
        inner: Arc::new(object_store::local::LocalFileSystem::new()),
        calls: AtomicUsize::new(0),
        fail_from,
        log: Mutex::new(Vec::new()),
    });
    let plain = cohort::snapshot::location::resolve(&dir.display().to_string()).unwrap();
    let location = cohort::snapshot::location::Location {
        store: store.clone(),
        local: None, // every write through the store, so every write can fail
        ..plain
    };
    (location, store)
}

fn publish_through(
    location: &cohort::snapshot::location::Location,
    members: &[u32],
    day: u32,
) -> cohort::Result<String> {
    use cohort::snapshot::writer::{
        publish, Bits, EncodedIds, GroupHeader, Promote, PublishedGroup,
    };
    let manifest = super::harness::test_manifest(&format!("2026-11-{day:02}T00:00:00Z"), 100);
    let groups = vec![PublishedGroup {
        header: GroupHeader {
            id: "g".into(),
            name: "g".into(),
            description: None,
            definition_hash: "sha256:test".into(),
            carried: None,
        },
        bits: Bits::Bitmap(members.iter().copied().collect()),
    }];
    let ids = EncodedIds::new("customer_id", None, None)?;
    let published = runtime().block_on(publish(location, manifest, &groups, ids, Promote::Auto))?;
    Ok(published.manifest.run_id)
}

#[test]
fn a_permanent_fault_at_any_call_of_a_local_publish_or_load_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let publish_dir = dir.path().join("snap");
    let (clean, _) = failing_location(&publish_dir, usize::MAX);
    let first = publish_through(&clean, &[1, 2, 3], 1).unwrap();
    // Count the calls of an undisturbed publish, then fail each one in turn.
    let (counting, store) = failing_location(&publish_dir, usize::MAX);
    publish_through(&counting, &[4, 5], 2).unwrap();
    let calls = store.log.lock().unwrap().clone();
    assert!(calls.len() >= 5, "{calls:?}");
    let latest = || std::fs::read_to_string(publish_dir.join("LATEST")).unwrap();
    for (n, call) in calls.iter().enumerate() {
        let before = latest();
        let (failing, _) = failing_location(&publish_dir, n);
        let result = publish_through(&failing, &[6, 7, 8 + n as u32], 3 + n as u32);
        let after = latest();
        match result {
            // Past the write of LATEST only the check afterwards can fail: a warning.
            Ok(run) => assert_eq!(after.trim(), run, "call {n} ({call})"),
            Err(e) => {
                assert_eq!(
                    after, before,
                    "a publish failing at call {n} ({call}) moved LATEST"
                );
                assert!(e.to_string().contains("injected fault"), "{e}");
            }
        }
        // Whatever happened, LATEST names a complete run that loads.
        let url = publish_dir.display().to_string();
        runtime()
            .block_on(cohort::Snapshot::open(&url))
            .unwrap_or_else(|e| {
                panic!("after a fault at call {n} ({call}), LATEST does not load: {e}")
            });
    }
    // Loads: a fault at any call is an error, never a panic or a half-loaded run.
    let (counting, store) = failing_location(&publish_dir, usize::MAX);
    runtime()
        .block_on(cohort::Snapshot::open_at(&counting))
        .unwrap();
    let loads = store.log.lock().unwrap().len();
    for n in 0..loads {
        let (failing, _) = failing_location(&publish_dir, n);
        let e = runtime()
            .block_on(cohort::Snapshot::open_at(&failing))
            .unwrap_err();
        assert!(e.to_string().contains("injected fault"), "call {n}: {e}");
    }
    let _ = first;
}
